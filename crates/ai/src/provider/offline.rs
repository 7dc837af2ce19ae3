//! The offline provider: deterministic, useful answers built from the catalogue and
//! templates, with no network. It answers a bare `assay serve` and ends every fallback
//! chain. Its answers pass the same schemas as a model's, and usage is estimated.
//!
//! What it reads: the last user message is the question (help, classification); for gap
//! analysis and policy drafts the grounding a caller puts in system messages counts too —
//! control ids mentioned there, and control state lines written with
//! [`control_status_line`], so an organisation's real state shapes the offline answer.
//! Knowledge ids with a `framework:` prefix are requirements; bare ids are controls, and
//! only controls are offered as mapped or covered controls.

use super::{Completion, EventStream, Provider, ProviderRequest, StreamEvent};
use crate::AiError;
use crate::knowledge::{KnowledgeEntry, KnowledgeSource, mentioned_ids};
use crate::types::{FinishReason, MessageRole, ProviderKind, TaskKind, TokenUsage};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use std::sync::Arc;

pub const OFFLINE_NOTE: &str = "(Offline answer from the Assay catalogue; no AI model was used.)";

/// The most confidence a rule-based classification claims.
pub const OFFLINE_MAX_CONFIDENCE: f64 = 0.65;

pub struct Offline {
    knowledge: Arc<dyn KnowledgeSource>,
}

/// Evidence types recognised by keyword, checked in order.
const EVIDENCE_RULES: &[(&str, &[&str])] = &[
    (
        "mfa_configuration",
        &["mfa", "multi-factor", "2fa", "two-factor", "authenticator"],
    ),
    (
        "firewall_configuration",
        &["firewall", "inbound rule", "security group", "router"],
    ),
    (
        "patch_report",
        &["patch", "update", "cve", "vulnerability scan"],
    ),
    (
        "malware_protection_report",
        &["antivirus", "anti-virus", "malware", "defender", "edr"],
    ),
    (
        "access_review",
        &["access review", "leaver", "user list", "account review"],
    ),
    ("backup_report", &["backup", "restore test", "snapshot"]),
    (
        "training_record",
        &["training", "awareness", "phishing simulation"],
    ),
    ("policy_document", &["policy", "procedure", "standard"]),
];

impl Offline {
    pub fn new(knowledge: Arc<dyn KnowledgeSource>) -> Self {
        Self { knowledge }
    }

    /// The answer for a request, as text (JSON text for structured tasks).
    pub fn answer(&self, req: &ProviderRequest) -> String {
        let question = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == MessageRole::User)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let mut entries = mentioned_ids(self.knowledge.as_ref(), question);
        if entries.is_empty() {
            entries = self.knowledge.search(question, 3);
        }
        match req.task {
            TaskKind::Classification => self.classify(question),
            TaskKind::PolicyDraft => {
                let grounded = self.grounded_controls(req);
                let controls = if grounded.is_empty() {
                    entries.into_iter().filter(is_control).collect()
                } else {
                    grounded
                };
                policy_draft(question, &controls)
            }
            TaskKind::GapAnalysis => {
                let states = self.control_states(req);
                if states.is_empty() {
                    gap_analysis(&entries)
                } else {
                    gap_analysis_from_states(&states)
                }
            }
            TaskKind::Help => help(&entries),
            TaskKind::Chat | TaskKind::Analysis | TaskKind::Recommendations => {
                guidance(req.task, &entries)
            }
        }
    }

    /// Controls mentioned anywhere in the request (grounding included), in order.
    fn grounded_controls(&self, req: &ProviderRequest) -> Vec<KnowledgeEntry> {
        let mut out: Vec<KnowledgeEntry> = Vec::new();
        for m in &req.messages {
            for e in mentioned_ids(self.knowledge.as_ref(), &m.content) {
                if is_control(&e) && !out.iter().any(|o| o.id == e.id) {
                    out.push(e);
                }
            }
        }
        out
    }

    /// Control state lines ([`control_status_line`]) anywhere in the request, in order.
    fn control_states(&self, req: &ProviderRequest) -> Vec<(KnowledgeEntry, String)> {
        let mut out: Vec<(KnowledgeEntry, String)> = Vec::new();
        for line in req.messages.iter().flat_map(|m| m.content.lines()) {
            let Some((id, status)) = parse_control_status_line(line) else {
                continue;
            };
            if let Some(e) = self.knowledge.lookup(id)
                && is_control(&e)
                && !out.iter().any(|(o, _)| o.id == e.id)
            {
                out.push((e, status.to_owned()));
            }
        }
        out
    }

    fn classify(&self, text: &str) -> String {
        let lower = text.to_lowercase();
        let (kind, hits) = EVIDENCE_RULES
            .iter()
            .map(|(kind, words)| (*kind, words.iter().filter(|w| lower.contains(*w)).count()))
            .max_by(|a, b| a.1.cmp(&b.1).then(std::cmp::Ordering::Greater))
            .filter(|(_, h)| *h > 0)
            .unwrap_or(("unclassified", 0));
        let controls: Vec<String> = self
            .knowledge
            .search(text, 12)
            .into_iter()
            .filter(is_control)
            .take(3)
            .map(|e| e.id)
            .collect();
        // Keyword rules are a weak signal: confidence stays below a model's and below the
        // default auto-apply threshold (0.7), so a person confirms a rule-based answer.
        let confidence = if hits == 0 {
            0.1
        } else {
            (0.3 + 0.15 * hits as f64).min(OFFLINE_MAX_CONFIDENCE)
        };
        json!({
            "evidence_type": kind,
            "controls": controls,
            "confidence": confidence,
            "rationale": format!("Rule-based classification: {hits} keyword match(es). {OFFLINE_NOTE}"),
        })
        .to_string()
    }
}

/// One control's state as a grounding line: `- IAM-01 [not_started] Title: detail`. Callers
/// grounding a gap analysis write these (a model reads them as plain text); the offline
/// provider reads the id and status back.
pub fn control_status_line(id: &str, status: &str, title: &str, detail: &str) -> String {
    if detail.is_empty() {
        format!("- {id} [{status}] {title}")
    } else {
        format!("- {id} [{status}] {title}: {detail}")
    }
}

fn parse_control_status_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix("- ")?;
    let (id, rest) = rest.split_once(' ')?;
    let status = rest.strip_prefix('[')?.split_once(']')?.0;
    (!id.is_empty() && !status.is_empty()).then_some((id, status))
}

/// A common control rather than a framework requirement (those ids are `framework:ref`).
fn is_control(e: &KnowledgeEntry) -> bool {
    !e.id.contains(':')
}

/// How urgent a control in this state is, for the offline gap list (`None`: no gap).
fn severity_of(status: &str) -> Option<&'static str> {
    match status {
        "not_started" => Some("high"),
        "in_progress" => Some("medium"),
        // An N/A without a justification scores as not started.
        "not_applicable_unjustified" => Some("medium"),
        _ => None,
    }
}

/// The most gaps an offline answer lists; callers list controls most valuable first.
const OFFLINE_GAPS: usize = 10;
const OFFLINE_RECOMMENDATIONS: usize = 5;

fn gap_analysis_from_states(states: &[(KnowledgeEntry, String)]) -> String {
    let open: Vec<(&KnowledgeEntry, &str)> = states
        .iter()
        .filter_map(|(e, s)| severity_of(s).map(|sev| (e, sev)))
        .collect();
    let not_started = states.iter().filter(|(_, s)| s == "not_started").count();
    let in_progress = states.iter().filter(|(_, s)| s == "in_progress").count();
    let gaps: Vec<_> = open
        .iter()
        .take(OFFLINE_GAPS)
        .map(|(e, sev)| {
            let state = if *sev == "high" {
                "not started"
            } else {
                "not complete"
            };
            json!({
                "control_id": e.id,
                "finding": format!("{} is {state}: {}", e.title, e.description),
                "severity": sev,
            })
        })
        .collect();
    let recommendations: Vec<_> = open
        .iter()
        .take(OFFLINE_RECOMMENDATIONS)
        .map(|(e, sev)| {
            json!({
                "action": format!("Implement {} ({}): {}", e.title, e.id, e.guidance),
                "control_id": e.id,
                "priority": sev,
            })
        })
        .collect();
    let summary = if open.is_empty() {
        format!(
            "All {} controls in scope are implemented or justified as not applicable; keep their evidence current. {OFFLINE_NOTE}",
            states.len()
        )
    } else {
        format!(
            "{} of {} controls in scope are not implemented yet ({not_started} not started, {in_progress} in progress). The list starts with the controls that would raise readiness most. {OFFLINE_NOTE}",
            open.len(),
            states.len()
        )
    };
    json!({ "summary": summary, "gaps": gaps, "recommendations": recommendations }).to_string()
}

fn help(entries: &[KnowledgeEntry]) -> String {
    if entries.is_empty() {
        return format!(
            "I could not find that requirement in the catalogue. Ask about a requirement by its id (for example CE-UAC) or describe the control in a few words. {OFFLINE_NOTE}"
        );
    }
    let mut out = String::new();
    for e in entries {
        out.push_str(&format!(
            "{} — {} ({})\n\n{}\n\nHow to meet it: {}\n\n",
            e.id, e.title, e.framework, e.description, e.guidance
        ));
    }
    out.push_str(OFFLINE_NOTE);
    out
}

fn guidance(task: TaskKind, entries: &[KnowledgeEntry]) -> String {
    if entries.is_empty() {
        return format!(
            "No catalogue entry matches this {task} request. Name a requirement id or the area (access control, patching, malware, firewalls, configuration) to get specific guidance. {OFFLINE_NOTE}"
        );
    }
    let mut out = String::from("Relevant requirements and what to do:\n");
    for (i, e) in entries.iter().enumerate() {
        out.push_str(&format!(
            "{}. {} {}: {}\n",
            i + 1,
            e.id,
            e.title,
            e.guidance
        ));
    }
    out.push('\n');
    out.push_str(OFFLINE_NOTE);
    out
}

fn policy_draft(topic: &str, entries: &[KnowledgeEntry]) -> String {
    let subject = entries
        .first()
        .map(|e| e.title.clone())
        .unwrap_or_else(|| "Information security".to_owned());
    let statements: Vec<String> = if entries.is_empty() {
        vec!["The organisation identifies the information and systems it relies on and protects them in proportion to their value.".into()]
    } else {
        entries
            .iter()
            .map(|e| format!("{} ({}): {}", e.title, e.id, e.guidance))
            .collect()
    };
    let topic_line: String = topic.chars().take(200).collect();
    let covered: Vec<&str> = entries
        .iter()
        .filter(|e| is_control(e))
        .map(|e| e.id.as_str())
        .collect();
    json!({
        "controls_covered": covered,
        "title": format!("{subject} policy"),
        "sections": [
            {"heading": "Purpose", "body": format!("This policy sets out how the organisation meets its obligations for {}. Requested scope: {topic_line}", subject.to_lowercase())},
            {"heading": "Scope", "body": "All staff, contractors and systems that store or process organisational information."},
            {"heading": "Policy statements", "body": statements.join("\n")},
            {"heading": "Roles and responsibilities", "body": "The compliance lead owns this policy; system owners implement it; all staff follow it."},
            {"heading": "Review", "body": format!("Reviewed at least annually and after any significant change. Template draft: review before approval. {OFFLINE_NOTE}")}
        ]
    })
    .to_string()
}

fn gap_analysis(entries: &[KnowledgeEntry]) -> String {
    let gaps: Vec<_> = entries
        .iter()
        .map(|e| json!({"control_id": e.id, "finding": format!("Confirm and evidence: {}", e.guidance), "severity": "medium"}))
        .collect();
    let recommendations: Vec<_> = entries
        .iter()
        .take(OFFLINE_RECOMMENDATIONS)
        .map(|e| json!({"action": format!("{}: {}", e.title, e.guidance), "control_id": e.id, "priority": "medium"}))
        .collect();
    json!({
        "summary": format!("Template gap list for {} requirement(s) matched in the catalogue; an AI review was not available. {OFFLINE_NOTE}", gaps.len()),
        "gaps": gaps,
        "recommendations": recommendations,
    })
    .to_string()
}

fn usage_for(req: &ProviderRequest, answer: &str) -> TokenUsage {
    let input: usize = req.messages.iter().map(|m| m.content.len()).sum();
    TokenUsage::estimate(input, answer.len())
}

impl Provider for Offline {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Offline
    }

    fn complete<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<Completion, AiError>> {
        let text = self.answer(req);
        let usage = usage_for(req, &text);
        futures::future::ready(Ok(Completion {
            text,
            usage: Some(usage),
            finish: Some(FinishReason::Stop),
        }))
        .boxed()
    }

    fn stream<'a>(
        &'a self,
        req: &'a ProviderRequest,
    ) -> BoxFuture<'a, Result<EventStream, AiError>> {
        let text = self.answer(req);
        let usage = usage_for(req, &text);
        let mut events: Vec<Result<StreamEvent, AiError>> = Vec::new();
        // Sentence-sized pieces, so a client renders progressively like any stream.
        let mut piece = String::new();
        for ch in text.chars() {
            piece.push(ch);
            if matches!(ch, '.' | '\n') && piece.len() > 40 {
                events.push(Ok(StreamEvent::Delta(std::mem::take(&mut piece))));
            }
        }
        if !piece.is_empty() {
            events.push(Ok(StreamEvent::Delta(piece)));
        }
        events.push(Ok(StreamEvent::Usage(usage)));
        events.push(Ok(StreamEvent::Finish(FinishReason::Stop)));
        futures::future::ready(Ok(futures::stream::iter(events).boxed())).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::StaticKnowledge;
    use crate::types::ChatMessage;
    use crate::validate;

    fn req(task: TaskKind, q: &str) -> ProviderRequest {
        ProviderRequest {
            model: "offline".into(),
            messages: vec![ChatMessage::user(q)],
            temperature: None,
            max_output_tokens: None,
            json_output: task.is_structured(),
            task,
        }
    }

    fn offline() -> Offline {
        Offline::new(Arc::new(StaticKnowledge::builtin()))
    }

    #[test]
    fn help_quotes_the_requirement_asked_about() {
        let a = offline().answer(&req(TaskKind::Help, "What does CE-SUM require?"));
        assert!(a.starts_with("CE-SUM — Security update management"), "{a}");
        assert!(a.contains("14 days") && a.contains(OFFLINE_NOTE));
    }

    #[test]
    fn structured_answers_pass_their_schemas() {
        let o = offline();
        for (task, q) in [
            (
                TaskKind::Classification,
                "Screenshot: MFA enforced for all administrator accounts in Entra",
            ),
            (
                TaskKind::PolicyDraft,
                "Draft an access control policy covering MFA and admin accounts",
            ),
            (
                TaskKind::GapAnalysis,
                "We patch monthly and have no firewall rules review",
            ),
        ] {
            let a = o.answer(&req(task, q));
            validate::check(task, &a).unwrap_or_else(|e| panic!("{task}: {e}: {a}"));
        }
    }

    #[test]
    fn classification_is_rule_based_and_deterministic() {
        let o = offline();
        let a: serde_json::Value = serde_json::from_str(&o.answer(&req(
            TaskKind::Classification,
            "Windows Defender antivirus scan report",
        )))
        .unwrap();
        assert_eq!(a["evidence_type"], "malware_protection_report");
        assert_eq!(a["controls"][0], "CE-MP");
        let b = o.answer(&req(
            TaskKind::Classification,
            "Windows Defender antivirus scan report",
        ));
        assert_eq!(a, serde_json::from_str::<serde_json::Value>(&b).unwrap());
        let none: serde_json::Value =
            serde_json::from_str(&o.answer(&req(TaskKind::Classification, "holiday photo")))
                .unwrap();
        assert_eq!(none["evidence_type"], "unclassified");
        assert!(a["confidence"].as_f64().unwrap() <= OFFLINE_MAX_CONFIDENCE);
        assert!(none["confidence"].as_f64().unwrap() < 0.2);
    }

    fn catalogue_offline() -> Offline {
        Offline::new(Arc::new(crate::knowledge::CatalogueKnowledge::builtin()))
    }

    fn grounded(task: TaskKind, grounding: &str, q: &str) -> ProviderRequest {
        let mut r = req(task, q);
        r.messages.insert(0, ChatMessage::system(grounding));
        r
    }

    #[test]
    fn gap_analysis_reads_the_control_states_it_is_grounded_in() {
        let grounding = [
            control_status_line(
                "IAM-04",
                "not_started",
                "Multi-factor authentication",
                "+20 points",
            ),
            control_status_line("IAM-01", "implemented", "Access control policy", ""),
            control_status_line(
                "IAM-02",
                "in_progress",
                "Joiner, mover and leaver process",
                "",
            ),
            control_status_line("NO-SUCH-1", "not_started", "Made up", ""),
        ]
        .join("\n");
        let a = catalogue_offline().answer(&grounded(
            TaskKind::GapAnalysis,
            &format!("Controls in scope:\n{grounding}"),
            "Analyse our gaps for cyber-essentials",
        ));
        let v = validate::check(TaskKind::GapAnalysis, &a).unwrap();
        let gaps: Vec<(&str, &str)> = v["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["control_id"].as_str().unwrap(),
                    g["severity"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(gaps, vec![("IAM-04", "high"), ("IAM-02", "medium")]);
        assert_eq!(v["recommendations"][0]["control_id"], "IAM-04");
        assert!(
            v["summary"]
                .as_str()
                .unwrap()
                .starts_with("2 of 3 controls"),
            "{v}"
        );

        let done = control_status_line("IAM-01", "implemented", "Access control policy", "");
        let v = validate::check(
            TaskKind::GapAnalysis,
            &catalogue_offline().answer(&grounded(TaskKind::GapAnalysis, &done, "gaps?")),
        )
        .unwrap();
        assert!(v["gaps"].as_array().unwrap().is_empty());
    }

    #[test]
    fn policy_draft_covers_the_controls_it_is_grounded_in() {
        let a = catalogue_offline().answer(&grounded(
            TaskKind::PolicyDraft,
            "Candidate controls:\n- IAM-01 Access control policy\n- IAM-04 Multi-factor authentication\n- cyber-essentials:UA.1 is a requirement, not a control",
            "Access control",
        ));
        let v = validate::check(TaskKind::PolicyDraft, &a).unwrap();
        assert_eq!(v["controls_covered"], json!(["IAM-01", "IAM-04"]));
        assert!(a.contains("IAM-04"));
    }

    #[test]
    fn catalogue_classification_maps_to_controls_only() {
        let a = catalogue_offline().answer(&req(
            TaskKind::Classification,
            "Export of the multi-factor authentication enforcement settings for all users",
        ));
        let v = validate::check(TaskKind::Classification, &a).unwrap();
        assert_eq!(v["evidence_type"], "mfa_configuration");
        let controls = v["controls"].as_array().unwrap();
        assert!(!controls.is_empty() && controls.len() <= 3, "{v}");
        assert!(
            controls.iter().all(|c| assay_core::catalogue::builtin()
                .control(c.as_str().unwrap())
                .is_some()),
            "{v}"
        );
    }
}
