//! Assessments (R-23): question banks built from the controls in scope of a framework,
//! structured answers, and the deterministic result they imply.
//!
//! # Rules
//!
//! **Question bank.** The controls in scope of a framework are those mapped to at least one
//! of its assessable requirements, in library order; each contributes its questions, with
//! ids `<control>.q<n>` counted from 1 (`IAM-01.q2`). Ids are stable as long as a control's
//! questions keep their order.
//!
//! **Answers** are an enum — `yes | partial | no | not_applicable | unknown` — never text, so
//! "not implemented" cannot be read as implemented; notes are kept but never interpreted.
//! A question left unanswered counts as `unknown`.
//!
//! **Implied control status.** A control takes its *weakest* answer, because a control is
//! only as done as its least-done part: `no` and `unknown` → not started, then `partial` →
//! in progress, then `yes` → implemented. `not_applicable` answers are set aside, unless
//! every question of the control says `not_applicable`: then the control is not applicable,
//! justified by the notes of those answers. Without notes it is listed in
//! [`AssessmentResult::needs_justification`] and scores as not started (the readiness rule),
//! so an unexplained N/A never helps a score.
//!
//! **Result.** The score is the readiness computation ([`crate::readiness`]) on the implied
//! statuses; gaps are the controls whose implementation would raise it, largest gain first;
//! next steps are the gaps' implementation guidance, in the same order. Implied statuses are
//! a proposal: the caller applies them only when the user confirms.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::control::ControlStatus;
use crate::readiness::{Breakdown, ControlState, ReadinessError, ReadinessModel};

/// How many gaps get a written next step.
pub const NEXT_STEPS: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssessmentError {
    #[error("unknown framework '{0}'")]
    UnknownFramework(String),
    #[error("question '{question}' is not part of the {framework} assessment")]
    UnknownQuestion { framework: String, question: String },
}

impl From<ReadinessError> for AssessmentError {
    fn from(e: ReadinessError) -> Self {
        match e {
            ReadinessError::UnknownFramework(key) => AssessmentError::UnknownFramework(key),
        }
    }
}

/// A structured answer. Ordered from weakest to strongest for the implementation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Yes,
    Partial,
    No,
    NotApplicable,
    Unknown,
}

impl Answer {
    pub const ALL: [Answer; 5] = [
        Answer::Yes,
        Answer::Partial,
        Answer::No,
        Answer::NotApplicable,
        Answer::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::Partial => "partial",
            Answer::No => "no",
            Answer::NotApplicable => "not_applicable",
            Answer::Unknown => "unknown",
        }
    }

    /// Exact match on the five answer words; anything else (including "implemented" or
    /// "not implemented") is refused rather than guessed at.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Strength for the weakest-answer rule; `None` for not applicable.
    fn strength(self) -> Option<u8> {
        match self {
            Answer::No | Answer::Unknown => Some(0),
            Answer::Partial => Some(1),
            Answer::Yes => Some(2),
            Answer::NotApplicable => None,
        }
    }
}

/// An answer and the notes that came with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub answer: Answer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl AnswerRecord {
    pub fn new(answer: Answer) -> Self {
        Self {
            answer,
            notes: None,
        }
    }

    pub fn with_notes(answer: Answer, notes: impl Into<String>) -> Self {
        Self {
            answer,
            notes: Some(notes.into()),
        }
    }
}

/// One question of a bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    /// `IAM-01.q1`.
    pub id: String,
    pub control: String,
    pub control_title: String,
    pub domain: String,
    pub text: String,
}

/// A framework's questions and what is needed to evaluate answers to them. Build once per
/// framework and catalogue; evaluating is pure and deterministic.
#[derive(Debug, Clone)]
pub struct Assessment {
    framework: String,
    questions: Vec<Question>,
    /// In-scope controls in library order, with the range of their questions.
    controls: Vec<ScopedControl>,
    model: ReadinessModel,
}

#[derive(Debug, Clone)]
struct ScopedControl {
    key: String,
    guidance: String,
    first_question: usize,
    question_count: usize,
}

impl Assessment {
    pub fn new(catalogue: &Catalogue, framework: &str) -> Result<Self, AssessmentError> {
        let model = ReadinessModel::new(catalogue, &[framework])?.with_action_limit(usize::MAX);
        let mut questions = Vec::new();
        let mut controls = Vec::new();
        for key in model.controls_in_scope(framework) {
            let control = catalogue
                .control(key)
                .expect("in-scope controls come from this catalogue");
            controls.push(ScopedControl {
                key: control.key.clone(),
                guidance: control.guidance.clone(),
                first_question: questions.len(),
                question_count: control.questions.len(),
            });
            questions.extend(
                control
                    .questions
                    .iter()
                    .enumerate()
                    .map(|(i, text)| Question {
                        id: format!("{}.q{}", control.key, i + 1),
                        control: control.key.clone(),
                        control_title: control.title.clone(),
                        domain: control.domain.clone(),
                        text: text.clone(),
                    }),
            );
        }
        Ok(Self {
            framework: framework.to_owned(),
            questions,
            controls,
            model,
        })
    }

    pub fn framework(&self) -> &str {
        &self.framework
    }

    /// The question bank, grouped by control in library order.
    pub fn questions(&self) -> &[Question] {
        &self.questions
    }

    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }

    /// Answers keyed by question id; questions without an answer count as unknown.
    pub fn evaluate(
        &self,
        answers: &HashMap<String, AnswerRecord>,
    ) -> Result<AssessmentResult, AssessmentError> {
        let mut unknown_ids: Vec<&String> = answers
            .keys()
            .filter(|id| self.question(id).is_none())
            .collect();
        unknown_ids.sort();
        if let Some(id) = unknown_ids.first() {
            return Err(AssessmentError::UnknownQuestion {
                framework: self.framework.clone(),
                question: (*id).clone(),
            });
        }

        let mut implied = Vec::with_capacity(self.controls.len());
        let mut needs_justification = Vec::new();
        for control in &self.controls {
            let range = control.first_question..control.first_question + control.question_count;
            let records: Vec<Option<&AnswerRecord>> = self.questions[range]
                .iter()
                .map(|q| answers.get(&q.id))
                .collect();
            let (status, justification) = implied_status(&records);
            if status == ControlStatus::NotApplicable && justification.is_none() {
                needs_justification.push(control.key.clone());
            }
            implied.push(ImpliedControl {
                control: control.key.clone(),
                status,
                justification,
            });
        }

        let states: HashMap<String, ControlState> = implied
            .iter()
            .map(|i| {
                (
                    i.control.clone(),
                    ControlState {
                        status: i.status,
                        justification: i.justification.clone(),
                        ..ControlState::default()
                    },
                )
            })
            .collect();
        let readiness = self.model.compute(&states);
        let scored = &readiness.frameworks[0];
        let gaps: Vec<Gap> = scored
            .top_actions
            .iter()
            .map(|a| Gap {
                control: a.control.to_owned(),
                title: a.title.to_owned(),
                status: states[a.control].status,
                points: a.points,
                requirements_advanced: a.requirements_advanced,
            })
            .collect();
        let next_steps =
            gaps.iter()
                .take(NEXT_STEPS)
                .map(|gap| {
                    let guidance = &self
                        .controls
                        .iter()
                        .find(|c| c.key == gap.control)
                        .expect("gaps are in-scope controls")
                        .guidance;
                    format!(
                        "{} {} (+{:.1} points): {}",
                        gap.control, gap.title, gap.points, guidance
                    )
                })
                .chain(needs_justification.iter().map(|key| {
                    format!("{key}: record why it does not apply, or answer its questions")
                }))
                .collect();
        let answered = self
            .questions
            .iter()
            .filter(|q| {
                answers
                    .get(&q.id)
                    .is_some_and(|a| a.answer != Answer::Unknown)
            })
            .count();
        Ok(AssessmentResult {
            framework: self.framework.clone(),
            score: scored.score,
            percent: scored.percent,
            breakdown: scored.breakdown,
            questions: self.questions.len(),
            answered,
            implied,
            needs_justification,
            gaps,
            next_steps,
        })
    }
}

/// The weakest-answer rule for one control (see the module docs).
fn implied_status(records: &[Option<&AnswerRecord>]) -> (ControlStatus, Option<String>) {
    let weakest = records
        .iter()
        .filter_map(|r| r.map_or(Answer::Unknown, |r| r.answer).strength())
        .min();
    match weakest {
        Some(0) => (ControlStatus::NotStarted, None),
        Some(1) => (ControlStatus::InProgress, None),
        Some(_) => (ControlStatus::Implemented, None),
        // Every question answered not applicable (a control always has a question).
        None => {
            let mut notes: Vec<&str> = records
                .iter()
                .filter_map(|r| r.and_then(|r| r.notes.as_deref()))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            notes.dedup();
            let justification = (!notes.is_empty()).then(|| notes.join("; "));
            (ControlStatus::NotApplicable, justification)
        }
    }
}

/// The status an assessment implies for one control, to apply on confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpliedControl {
    pub control: String,
    pub status: ControlStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// A control whose implementation would raise the assessment score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub control: String,
    pub title: String,
    /// Implied status now (not started or in progress).
    pub status: ControlStatus,
    /// Score points gained if it became implemented.
    pub points: f64,
    pub requirements_advanced: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssessmentResult {
    pub framework: String,
    /// Readiness score of the implied statuses, rounded down; `None` if nothing applies.
    pub score: Option<u8>,
    pub percent: Option<f64>,
    pub breakdown: Breakdown,
    pub questions: usize,
    /// Questions answered with something other than unknown.
    pub answered: usize,
    /// Every in-scope control, in library order.
    pub implied: Vec<ImpliedControl>,
    /// Controls answered N/A throughout without notes to justify it.
    pub needs_justification: Vec<String>,
    /// Ranked by points, largest first; ties in library order.
    pub gaps: Vec<Gap>,
    pub next_steps: Vec<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::catalogue::builtin;

    fn ce() -> Assessment {
        Assessment::new(builtin(), "cyber-essentials").unwrap()
    }

    fn all(assessment: &Assessment, answer: Answer) -> HashMap<String, AnswerRecord> {
        assessment
            .questions()
            .iter()
            .map(|q| (q.id.clone(), AnswerRecord::new(answer)))
            .collect()
    }

    fn status_of(result: &AssessmentResult, control: &str) -> ControlStatus {
        result
            .implied
            .iter()
            .find(|i| i.control == control)
            .unwrap()
            .status
    }

    /// A control of the bank with two questions.
    fn two_question_control(a: &Assessment) -> String {
        a.controls
            .iter()
            .find(|c| c.question_count == 2)
            .expect("the library has two-question controls")
            .key
            .clone()
    }

    #[test]
    fn the_bank_holds_the_questions_of_the_controls_in_scope_with_stable_ids() {
        let a = ce();
        let catalogue = builtin();
        let in_scope: Vec<&str> = catalogue
            .controls()
            .iter()
            .filter(|c| c.maps_to.iter().any(|r| r.framework == "cyber-essentials"))
            .map(|c| c.key.as_str())
            .collect();
        let expected: usize = in_scope
            .iter()
            .map(|k| catalogue.control(k).unwrap().questions.len())
            .sum();
        assert_eq!(a.questions().len(), expected);
        let first = &a.questions()[0];
        assert_eq!(first.id, format!("{}.q1", in_scope[0]));
        assert_eq!(
            first.text,
            catalogue.control(in_scope[0]).unwrap().questions[0]
        );
        let key = two_question_control(&a);
        assert!(a.question(&format!("{key}.q2")).is_some());
        assert!(a.question(&format!("{key}.q3")).is_none());
        assert_eq!(
            Assessment::new(builtin(), "pci-dss").unwrap_err(),
            AssessmentError::UnknownFramework("pci-dss".to_owned())
        );
    }

    #[test]
    fn answers_map_to_statuses_and_a_control_takes_its_weakest_answer() {
        let a = ce();
        let key = two_question_control(&a);
        let (q1, q2) = (format!("{key}.q1"), format!("{key}.q2"));
        let cases = [
            (Answer::Yes, Answer::Yes, ControlStatus::Implemented),
            (Answer::Yes, Answer::Partial, ControlStatus::InProgress),
            (Answer::Yes, Answer::No, ControlStatus::NotStarted),
            (Answer::Partial, Answer::Unknown, ControlStatus::NotStarted),
            (
                Answer::Yes,
                Answer::NotApplicable,
                ControlStatus::Implemented,
            ),
            (
                Answer::Partial,
                Answer::NotApplicable,
                ControlStatus::InProgress,
            ),
            (
                Answer::NotApplicable,
                Answer::NotApplicable,
                ControlStatus::NotApplicable,
            ),
        ];
        for (x, y, expected) in cases {
            let answers = HashMap::from([
                (q1.clone(), AnswerRecord::with_notes(x, "n/a: no offices")),
                (q2.clone(), AnswerRecord::new(y)),
            ]);
            let r = a.evaluate(&answers).unwrap();
            assert_eq!(status_of(&r, &key), expected, "{x:?} + {y:?}");
        }
        // Unanswered is unknown, which is not started.
        let r = a
            .evaluate(&HashMap::from([(q1, AnswerRecord::new(Answer::Yes))]))
            .unwrap();
        assert_eq!(status_of(&r, &key), ControlStatus::NotStarted);
        assert_eq!(r.answered, 1);
    }

    #[test]
    fn not_implemented_never_reads_as_implemented() {
        let a = ce();
        let q = &a.questions()[0];
        // Notes are never interpreted, whatever they say.
        let answers = HashMap::from([(
            q.id.clone(),
            AnswerRecord::with_notes(Answer::No, "implemented everywhere, yes"),
        )]);
        let r = a.evaluate(&answers).unwrap();
        assert_eq!(status_of(&r, &q.control), ControlStatus::NotStarted);
        // Free text is not an answer.
        for text in ["implemented", "not implemented", "Yes", "y", "true", ""] {
            assert_eq!(Answer::parse(text), None, "{text}");
            let json = format!(r#"{{"answer":"{text}"}}"#);
            assert!(
                serde_json::from_str::<AnswerRecord>(&json).is_err(),
                "{text}"
            );
        }
        assert_eq!(Answer::parse("not_applicable"), Some(Answer::NotApplicable));
    }

    #[test]
    fn not_applicable_needs_notes_to_count() {
        let a = ce();
        let q = &a.questions()[0];
        let key = q.control.clone();
        let na: HashMap<String, AnswerRecord> = a
            .questions()
            .iter()
            .filter(|x| x.control == key)
            .map(|x| (x.id.clone(), AnswerRecord::new(Answer::NotApplicable)))
            .collect();
        let r = a.evaluate(&na).unwrap();
        assert_eq!(r.needs_justification, std::slice::from_ref(&key));
        assert!(
            r.next_steps
                .iter()
                .any(|s| s.starts_with(&format!("{key}:")))
        );
        assert_eq!(r.breakdown.not_applicable, 0);

        let justified: HashMap<String, AnswerRecord> = na
            .into_keys()
            .map(|id| {
                (
                    id,
                    AnswerRecord::with_notes(Answer::NotApplicable, "no WiFi"),
                )
            })
            .collect();
        let r = a.evaluate(&justified).unwrap();
        assert!(r.needs_justification.is_empty());
        let implied = r.implied.iter().find(|i| i.control == key).unwrap();
        // The same note on several questions is said once.
        assert_eq!(implied.justification.as_deref(), Some("no WiFi"));
    }

    #[test]
    fn all_yes_scores_100_all_no_scores_0_with_ranked_gaps_and_guidance() {
        let a = ce();
        let yes = a.evaluate(&all(&a, Answer::Yes)).unwrap();
        assert_eq!(yes.score, Some(100));
        assert!(yes.gaps.is_empty());
        assert!(yes.next_steps.is_empty());
        assert_eq!(yes.answered, yes.questions);

        let no = a.evaluate(&all(&a, Answer::No)).unwrap();
        assert_eq!(no.score, Some(0));
        assert!(!no.gaps.is_empty());
        assert!(no.gaps.windows(2).all(|w| w[0].points >= w[1].points));
        assert_eq!(no.next_steps.len(), NEXT_STEPS.min(no.gaps.len()));
        let top = builtin().control(&no.gaps[0].control).unwrap();
        assert!(no.next_steps[0].starts_with(&top.key));
        assert!(no.next_steps[0].ends_with(&top.guidance));
    }

    #[test]
    fn answers_to_questions_outside_the_bank_are_refused() {
        let a = ce();
        let answers = HashMap::from([("NOPE-01.q1".to_owned(), AnswerRecord::new(Answer::Yes))]);
        assert_eq!(
            a.evaluate(&answers).unwrap_err(),
            AssessmentError::UnknownQuestion {
                framework: "cyber-essentials".to_owned(),
                question: "NOPE-01.q1".to_owned()
            }
        );
    }

    fn arb_answer() -> impl Strategy<Value = AnswerRecord> {
        (
            proptest::sample::select(Answer::ALL.to_vec()),
            proptest::option::of(Just("out of scope".to_owned())),
        )
            .prop_map(|(answer, notes)| AnswerRecord { answer, notes })
    }

    proptest! {
        #[test]
        fn changing_an_answer_from_no_to_yes_never_lowers_the_score(
            framework in proptest::sample::select(
                vec!["nist-csf", "iso27001", "cyber-essentials", "uk-gdpr", "soc2"],
            ),
            answers in proptest::collection::vec(proptest::option::of(arb_answer()), 300),
            pick in any::<proptest::sample::Index>(),
        ) {
            let a = Assessment::new(builtin(), framework).unwrap();
            let mut map: HashMap<String, AnswerRecord> = a
                .questions()
                .iter()
                .zip(answers)
                .filter_map(|(q, r)| Some((q.id.clone(), r?)))
                .collect();
            let id = pick.get(a.questions()).id.clone();
            map.insert(id.clone(), AnswerRecord::new(Answer::No));
            let before = a.evaluate(&map).unwrap();
            map.insert(id.clone(), AnswerRecord::new(Answer::Yes));
            let after = a.evaluate(&map).unwrap();
            prop_assert!(after.percent >= before.percent, "{id}: {:?} -> {:?}", before.percent, after.percent);
            // Deterministic: the same answers give the same result.
            prop_assert_eq!(a.evaluate(&map).unwrap(), after);
        }
    }
}
