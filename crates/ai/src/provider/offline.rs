//! The offline provider: deterministic, useful answers built from the catalogue and
//! templates, with no network. It answers a bare `assay serve` and ends every fallback
//! chain. Its answers pass the same schemas as a model's, and usage is estimated.

use super::{Completion, EventStream, Provider, ProviderRequest, StreamEvent};
use crate::AiError;
use crate::knowledge::{KnowledgeEntry, KnowledgeSource, mentioned_ids};
use crate::types::{FinishReason, MessageRole, ProviderKind, TaskKind, TokenUsage};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use std::sync::Arc;

pub const OFFLINE_NOTE: &str = "(Offline answer from the Assay catalogue; no AI model was used.)";

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
            TaskKind::PolicyDraft => policy_draft(question, &entries),
            TaskKind::GapAnalysis => gap_analysis(&entries),
            TaskKind::Help => help(&entries),
            TaskKind::Chat | TaskKind::Analysis | TaskKind::Recommendations => {
                guidance(req.task, &entries)
            }
        }
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
            .search(text, 3)
            .into_iter()
            .map(|e| e.id)
            .collect();
        // Keyword rules are a weak signal: confidence stays well below a model's.
        let confidence = if hits == 0 {
            0.1
        } else {
            (0.3 + 0.15 * hits as f64).min(0.75)
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
    json!({
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
    json!({
        "summary": format!("Template gap list for {} requirement(s) matched in the catalogue; an AI review was not available. {OFFLINE_NOTE}", gaps.len()),
        "gaps": gaps,
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
        assert!(none["confidence"].as_f64().unwrap() < 0.2);
    }
}
