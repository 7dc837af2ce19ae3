//! Readiness: how far an organisation is towards each adopted framework, computed
//! from the state of its common controls — never stored as a number someone typed.
//!
//! # Rules
//!
//! **Control level.** A control absent from the state map is `not_started`. A control marked
//! `not_applicable` counts as not applicable only with a non-blank justification; without one
//! it counts as `not_started`, so an unexplained N/A can never raise or shrink a score.
//! [`Assurance::Degraded`] (the hook for evidence freshness and automated checks) makes an
//! `implemented` control count as `in_progress`.
//!
//! **Requirement state**, from the controls mapped to the requirement:
//! - `not_applicable` when it has at least one control and every one is justified N/A;
//! - otherwise, over its applicable controls (the ones not justified N/A):
//!   - `met` when every one is implemented,
//!   - `partial` when at least one is implemented or in progress,
//!   - `missing` otherwise — including a requirement no control maps to, which no amount
//!     of control work can satisfy until someone maps one.
//!
//! **Framework score.** Every assessable requirement weighs the same: `met` earns 1,
//! `partial` ½, `missing` 0; `not_applicable` leaves the denominator. The exact percentage
//! is [`FrameworkReadiness::percent`]; [`FrameworkReadiness::score`] is it rounded *down*, so
//! 100 means everything is met, not "nearly". With nothing applicable there is no score
//! (`None`) rather than a made-up one.
//!
//! **Overall score.** The unweighted mean of the exact percentages of the frameworks that
//! have a score, rounded down. Each adopted framework is a separate commitment, so each
//! counts once: pooling requirements instead would let CSF's 106 subcategories drown
//! Cyber Essentials' handful.
//!
//! **Top actions.** For each control that is neither implemented nor justified N/A, the
//! exact number of score points the framework (or overall) score would gain if that control
//! alone became implemented, largest first (ties in library order). Requirements depend only
//! on their own controls, so the gain is the sum of per-requirement gains and is computed in
//! the same pass as the score.
//!
//! Build a [`ReadinessModel`] once per catalogue and set of adopted frameworks, then call
//! [`ReadinessModel::compute`] on every change: the requirement→control index is resolved to
//! integer offsets up front, and a recompute allocates only its result.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::control::ControlStatus;

/// How many top actions a result lists unless [`ReadinessModel::with_action_limit`] says
/// otherwise.
pub const DEFAULT_ACTION_LIMIT: usize = 5;

/// An organisation's state for one common control, as far as scoring needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    pub status: ControlStatus,
    /// Why the control does not apply; required for `not_applicable` to count as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Signals beyond the status (evidence freshness, automated check results).
    #[serde(default)]
    pub assurance: Assurance,
}

impl ControlState {
    pub fn new(status: ControlStatus) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    pub fn not_applicable(justification: impl Into<String>) -> Self {
        Self {
            status: ControlStatus::NotApplicable,
            justification: Some(justification.into()),
            ..Self::default()
        }
    }

    /// Whether this is an N/A that scoring honours (a non-blank justification).
    pub fn is_justified_not_applicable(&self) -> bool {
        self.status == ControlStatus::NotApplicable
            && self
                .justification
                .as_deref()
                .is_some_and(|j| !j.trim().is_empty())
    }

    fn level(&self) -> Level {
        match self.status {
            ControlStatus::NotStarted => Level::NotStarted,
            ControlStatus::InProgress => Level::InProgress,
            ControlStatus::Implemented => match self.assurance {
                Assurance::Unverified => Level::Implemented,
                Assurance::Degraded => Level::InProgress,
            },
            ControlStatus::NotApplicable if self.is_justified_not_applicable() => {
                Level::NotApplicable
            }
            ControlStatus::NotApplicable => Level::NotStarted,
        }
    }
}

/// The hook for evidence freshness and automated check results (later issues). Today
/// nothing produces `Degraded`; when something does, an implemented control whose evidence
/// has expired or whose check fails counts as in progress until it is fixed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assurance {
    /// No signal beyond the status: the status is taken at its word.
    #[default]
    Unverified,
    /// A signal says the implementation cannot currently be relied on.
    Degraded,
}

/// What a requirement's mapped controls add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementState {
    Met,
    Partial,
    Missing,
    NotApplicable,
}

impl RequirementState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementState::Met => "met",
            RequirementState::Partial => "partial",
            RequirementState::Missing => "missing",
            RequirementState::NotApplicable => "not_applicable",
        }
    }

    /// Credit in half-points, so partial's ½ stays integer arithmetic.
    fn half_credit(self) -> u32 {
        match self {
            RequirementState::Met => 2,
            RequirementState::Partial => 1,
            RequirementState::Missing | RequirementState::NotApplicable => 0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadinessError {
    #[error("unknown framework '{0}'")]
    UnknownFramework(String),
}

/// A control's effective level once justification and assurance are taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    NotStarted,
    InProgress,
    Implemented,
    NotApplicable,
}

/// Counts of a requirement's controls by level; everything else follows from them.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    covering: u32,
    implemented: u32,
    in_progress: u32,
    not_applicable: u32,
}

impl Tally {
    fn state(self) -> RequirementState {
        let applicable = self.covering - self.not_applicable;
        if self.covering > 0 && applicable == 0 {
            RequirementState::NotApplicable
        } else if applicable > 0 && self.implemented == applicable {
            RequirementState::Met
        } else if self.implemented + self.in_progress > 0 {
            RequirementState::Partial
        } else {
            RequirementState::Missing
        }
    }

    /// The state if one of the controls, currently at `from`, became implemented.
    fn state_if_implemented(mut self, from: Level) -> RequirementState {
        match from {
            Level::Implemented => {}
            Level::InProgress => {
                self.in_progress -= 1;
                self.implemented += 1;
            }
            Level::NotStarted => self.implemented += 1,
            Level::NotApplicable => {
                self.not_applicable -= 1;
                self.implemented += 1;
            }
        }
        self.state()
    }
}

#[derive(Debug, Clone)]
struct RequirementIndex {
    ref_id: String,
    /// Range into `ReadinessModel::edges`.
    start: u32,
    end: u32,
}

#[derive(Debug, Clone)]
struct FrameworkIndex {
    key: String,
    requirements: Vec<RequirementIndex>,
}

#[derive(Debug, Clone)]
struct ControlEntry {
    key: String,
    title: String,
}

/// The requirement→control index of a set of frameworks, built once and reused for every
/// recompute.
#[derive(Debug, Clone)]
pub struct ReadinessModel {
    controls: Vec<ControlEntry>,
    frameworks: Vec<FrameworkIndex>,
    /// Control positions, one run per requirement.
    edges: Vec<u32>,
    action_limit: usize,
}

impl ReadinessModel {
    /// Index the assessable requirements of `framework_keys` (in that order) against the
    /// catalogue's controls.
    pub fn new<S: AsRef<str>>(
        catalogue: &Catalogue,
        framework_keys: &[S],
    ) -> Result<Self, ReadinessError> {
        let controls: Vec<ControlEntry> = catalogue
            .controls()
            .iter()
            .map(|c| ControlEntry {
                key: c.key.clone(),
                title: c.title.clone(),
            })
            .collect();
        let position: HashMap<&str, u32> = catalogue
            .controls()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.as_str(), index_u32(i)))
            .collect();
        let mut edges = Vec::new();
        let mut frameworks = Vec::with_capacity(framework_keys.len());
        for key in framework_keys {
            let key = key.as_ref();
            let framework = catalogue
                .framework(key)
                .ok_or_else(|| ReadinessError::UnknownFramework(key.to_owned()))?;
            let requirements = framework
                .assessable()
                .map(|r| {
                    let start = index_u32(edges.len());
                    edges.extend(
                        catalogue
                            .controls_for(key, &r.ref_id)
                            .iter()
                            .map(|c| position[c.key.as_str()]),
                    );
                    RequirementIndex {
                        ref_id: r.ref_id.clone(),
                        start,
                        end: index_u32(edges.len()),
                    }
                })
                .collect();
            frameworks.push(FrameworkIndex {
                key: key.to_owned(),
                requirements,
            });
        }
        Ok(Self {
            controls,
            frameworks,
            edges,
            action_limit: DEFAULT_ACTION_LIMIT,
        })
    }

    /// Index every framework of the catalogue.
    pub fn all(catalogue: &Catalogue) -> Self {
        let keys: Vec<&str> = catalogue
            .frameworks()
            .iter()
            .map(|f| f.key.as_str())
            .collect();
        Self::new(catalogue, &keys).expect("keys come from the catalogue itself")
    }

    /// List at most `limit` top actions per framework and overall (`usize::MAX` for all).
    pub fn with_action_limit(mut self, limit: usize) -> Self {
        self.action_limit = limit;
        self
    }

    /// The framework keys this model scores, in order.
    pub fn framework_keys(&self) -> impl Iterator<Item = &str> {
        self.frameworks.iter().map(|f| f.key.as_str())
    }

    /// Keys of the controls that map to at least one requirement of `framework`, in
    /// library order (the controls "in scope" of that framework).
    pub fn controls_in_scope(&self, framework: &str) -> Vec<&str> {
        let mut in_scope = vec![false; self.controls.len()];
        for f in self.frameworks.iter().filter(|f| f.key == framework) {
            for r in &f.requirements {
                for &c in &self.edges[r.start as usize..r.end as usize] {
                    in_scope[c as usize] = true;
                }
            }
        }
        self.controls
            .iter()
            .zip(in_scope)
            .filter_map(|(c, yes)| yes.then_some(c.key.as_str()))
            .collect()
    }

    /// Score every framework of the model and overall from the org's control states
    /// (controls absent from `states` are not started).
    pub fn compute(&self, states: &HashMap<String, ControlState>) -> Readiness<'_> {
        let levels: Vec<Level> = self
            .controls
            .iter()
            .map(|c| level_of(states, &c.key))
            .collect();
        // Per control: half-credit gained in the current framework, requirements advanced
        // there, and points gained overall (summed, divided by the scored count at the end).
        let mut gain = vec![0u32; self.controls.len()];
        let mut advanced = vec![0u32; self.controls.len()];
        let mut overall_gain = vec![0f64; self.controls.len()];
        let mut overall_advanced = vec![0u32; self.controls.len()];

        let mut frameworks = Vec::with_capacity(self.frameworks.len());
        for f in &self.frameworks {
            gain.fill(0);
            advanced.fill(0);
            let mut breakdown = Breakdown::default();
            let mut requirements = Vec::with_capacity(f.requirements.len());
            for r in &f.requirements {
                let edges = &self.edges[r.start as usize..r.end as usize];
                let mut tally = Tally::default();
                for &c in edges {
                    tally.covering += 1;
                    match levels[c as usize] {
                        Level::Implemented => tally.implemented += 1,
                        Level::InProgress => tally.in_progress += 1,
                        Level::NotApplicable => tally.not_applicable += 1,
                        Level::NotStarted => {}
                    }
                }
                let state = tally.state();
                breakdown.count(state);
                if matches!(state, RequirementState::Partial | RequirementState::Missing) {
                    for &c in edges {
                        let level = levels[c as usize];
                        // A justified N/A is a decision, not a gap: never suggested.
                        if matches!(level, Level::NotStarted | Level::InProgress) {
                            let delta = tally.state_if_implemented(level).half_credit()
                                - state.half_credit();
                            gain[c as usize] += delta;
                            advanced[c as usize] += u32::from(delta > 0);
                        }
                    }
                }
                requirements.push(RequirementReadiness {
                    ref_id: &r.ref_id,
                    state,
                    covering: tally.covering,
                    implemented: tally.implemented,
                    in_progress: tally.in_progress,
                    not_applicable: tally.not_applicable,
                });
            }
            let possible = 2 * breakdown.applicable();
            let credit = breakdown.half_credit();
            let score = (100 * credit)
                .checked_div(possible)
                .map(|s| u8::try_from(s).expect("credit <= possible"));
            let percent = score.map(|_| 100.0 * f64::from(credit) / f64::from(possible));
            let mut top_actions = Vec::new();
            if possible > 0 {
                for (c, (&g, &n)) in gain.iter().zip(&advanced).enumerate() {
                    if g > 0 {
                        let points = 100.0 * f64::from(g) / f64::from(possible);
                        overall_gain[c] += points;
                        overall_advanced[c] += n;
                        top_actions.push(self.action(c, points, n));
                    }
                }
            }
            rank(&mut top_actions, self.action_limit);
            frameworks.push(FrameworkReadiness {
                framework: &f.key,
                score,
                percent,
                breakdown,
                requirements,
                top_actions,
            });
        }

        let scored: Vec<f64> = frameworks.iter().filter_map(|f| f.percent).collect();
        let overall = if scored.is_empty() {
            OverallReadiness::default()
        } else {
            let n = scored.len() as f64;
            let percent = scored.iter().sum::<f64>() / n;
            let mut top_actions: Vec<Action<'_>> = overall_gain
                .iter()
                .zip(&overall_advanced)
                .enumerate()
                .filter(|&(_, (&g, _))| g > 0.0)
                .map(|(c, (&g, &a))| self.action(c, g / n, a))
                .collect();
            rank(&mut top_actions, self.action_limit);
            OverallReadiness {
                score: Some(floor_percent(percent)),
                percent: Some(percent),
                frameworks_scored: scored.len(),
                top_actions,
            }
        };
        Readiness {
            frameworks,
            overall,
        }
    }

    fn action(&self, control: usize, points: f64, requirements_advanced: u32) -> Action<'_> {
        let entry = &self.controls[control];
        Action {
            control: &entry.key,
            title: &entry.title,
            points,
            requirements_advanced,
            order: control,
        }
    }
}

/// A control's level; absent from the map means not started.
fn level_of(states: &HashMap<String, ControlState>, key: &str) -> Level {
    states
        .get(key)
        .map_or(Level::NotStarted, ControlState::level)
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).expect("catalogue sizes fit in u32")
}

fn floor_percent(percent: f64) -> u8 {
    // Clamped so a float sum can never produce 101; the cast cannot truncate after clamping.
    percent.floor().clamp(0.0, 100.0) as u8
}

fn rank(actions: &mut Vec<Action<'_>>, limit: usize) {
    actions.sort_by(|a, b| b.points.total_cmp(&a.points).then(a.order.cmp(&b.order)));
    actions.truncate(limit);
}

/// Scores of every framework of a model and overall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness<'m> {
    pub frameworks: Vec<FrameworkReadiness<'m>>,
    pub overall: OverallReadiness<'m>,
}

impl<'m> Readiness<'m> {
    pub fn framework(&self, key: &str) -> Option<&FrameworkReadiness<'m>> {
        self.frameworks.iter().find(|f| f.framework == key)
    }
}

/// One framework's score and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameworkReadiness<'m> {
    pub framework: &'m str,
    /// Percentage rounded down; `None` when every requirement is not applicable.
    pub score: Option<u8>,
    /// The exact percentage, for display with decimals and for trends.
    pub percent: Option<f64>,
    pub breakdown: Breakdown,
    /// Every assessable requirement, in framework order.
    pub requirements: Vec<RequirementReadiness<'m>>,
    pub top_actions: Vec<Action<'m>>,
}

/// Requirement counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub met: u32,
    pub partial: u32,
    pub missing: u32,
    pub not_applicable: u32,
}

impl Breakdown {
    fn count(&mut self, state: RequirementState) {
        match state {
            RequirementState::Met => self.met += 1,
            RequirementState::Partial => self.partial += 1,
            RequirementState::Missing => self.missing += 1,
            RequirementState::NotApplicable => self.not_applicable += 1,
        }
    }

    /// Requirements in the denominator.
    pub fn applicable(&self) -> u32 {
        self.met + self.partial + self.missing
    }

    pub fn total(&self) -> u32 {
        self.applicable() + self.not_applicable
    }

    fn half_credit(&self) -> u32 {
        2 * self.met + self.partial
    }
}

/// One requirement's state and the control counts behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequirementReadiness<'m> {
    pub ref_id: &'m str,
    pub state: RequirementState,
    pub covering: u32,
    pub implemented: u32,
    pub in_progress: u32,
    pub not_applicable: u32,
}

/// A control whose implementation would raise a score, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action<'m> {
    pub control: &'m str,
    pub title: &'m str,
    /// Score points (0..=100 scale) gained if this control alone became implemented.
    pub points: f64,
    /// Requirements whose state would improve.
    pub requirements_advanced: u32,
    /// Library position, the tie-break.
    #[serde(skip)]
    order: usize,
}

/// The score across all scored frameworks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OverallReadiness<'m> {
    /// Mean of the framework percentages, rounded down; `None` when no framework has one.
    pub score: Option<u8>,
    pub percent: Option<f64>,
    pub frameworks_scored: usize,
    pub top_actions: Vec<Action<'m>>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::catalogue::builtin;

    const DEMO: &str = "format: assay.framework.v1
framework:
  key: demo
  name: Demo
  version: '1'
  publisher: Us
  licence: {id: CC0-1.0, name: Creative Commons Zero}
  provenance: {source: Written for tests}
  description: A demo.
requirements:
  - {ref: G, title: Group, description: G.}
  - {ref: R1, parent: G, title: One, description: D.}
  - {ref: R2, parent: G, title: Two, description: D.}
  - {ref: R3, parent: G, title: Three, description: D.}
  - {ref: R4, parent: G, title: Four, description: D.}
";
    const DEMO_CONTROLS: &str = "format: assay.controls.v1
library: {key: lib, name: Lib, version: '1', licence: {id: CC0-1.0, name: CC0}, provenance: {source: Tests}}
controls:
  - {key: A, title: Alpha, domain: D, description: D., guidance: G., questions: [Q?], maps: {demo: [R1]}}
  - {key: B, title: Beta, domain: D, description: D., guidance: G., questions: [Q?], maps: {demo: [R1, R2]}}
  - {key: C, title: Gamma, domain: D, description: D., guidance: G., questions: [Q?], maps: {demo: [R3]}}
";

    /// R1 <- A, B; R2 <- B; R3 <- C; R4 has no control.
    fn demo() -> Catalogue {
        Catalogue::from_documents([("demo.yaml", DEMO), ("controls.yaml", DEMO_CONTROLS)])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn states(entries: &[(&str, ControlState)]) -> HashMap<String, ControlState> {
        entries
            .iter()
            .map(|(k, s)| ((*k).to_owned(), s.clone()))
            .collect()
    }

    fn implemented() -> ControlState {
        ControlState::new(ControlStatus::Implemented)
    }

    fn in_progress() -> ControlState {
        ControlState::new(ControlStatus::InProgress)
    }

    fn requirement_states(r: &FrameworkReadiness<'_>) -> Vec<(String, RequirementState)> {
        r.requirements
            .iter()
            .map(|q| (q.ref_id.to_owned(), q.state))
            .collect()
    }

    fn st(list: &[(&str, RequirementState)]) -> Vec<(String, RequirementState)> {
        list.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect()
    }

    use RequirementState::{Met, Missing, NotApplicable as Na, Partial};

    #[test]
    fn requirement_states_follow_the_documented_rule() {
        let catalogue = demo();
        let model = ReadinessModel::new(&catalogue, &["demo"]).unwrap();
        // Only assessable requirements are scored: the group G is not.
        let r = model.compute(&HashMap::new());
        let demo = r.framework("demo").unwrap();
        assert_eq!(
            requirement_states(demo),
            st(&[
                ("R1", Missing),
                ("R2", Missing),
                ("R3", Missing),
                ("R4", Missing)
            ])
        );

        let r = model.compute(&states(&[("A", implemented()), ("C", in_progress())]));
        let demo = r.framework("demo").unwrap();
        assert_eq!(
            requirement_states(demo),
            st(&[
                ("R1", Partial),
                ("R2", Missing),
                ("R3", Partial),
                ("R4", Missing)
            ])
        );
        // (½ + ½) of 4 requirements.
        assert_eq!(demo.score, Some(25));

        let r = model.compute(&states(&[
            ("A", implemented()),
            ("B", ControlState::not_applicable("no second office")),
            ("C", implemented()),
        ]));
        let demo = r.framework("demo").unwrap();
        // R1: A implemented, B justified N/A -> met. R2: only B, N/A -> out of scoring.
        assert_eq!(
            requirement_states(demo),
            st(&[("R1", Met), ("R2", Na), ("R3", Met), ("R4", Missing)])
        );
        assert_eq!(
            demo.breakdown,
            Breakdown {
                met: 2,
                partial: 0,
                missing: 1,
                not_applicable: 1
            }
        );
        assert_eq!(demo.score, Some(66));
        assert!((demo.percent.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn not_applicable_without_justification_counts_as_not_started() {
        let catalogue = demo();
        let model = ReadinessModel::new(&catalogue, &["demo"]).unwrap();
        for justification in [None, Some(String::new()), Some("   ".to_owned())] {
            let unexplained = ControlState {
                status: ControlStatus::NotApplicable,
                justification,
                ..ControlState::default()
            };
            let r = model.compute(&states(&[("C", unexplained)]));
            let demo = r.framework("demo").unwrap();
            assert_eq!(demo.requirements[2].state, Missing);
            assert_eq!(demo.breakdown.not_applicable, 0);
        }
    }

    #[test]
    fn degraded_assurance_counts_an_implemented_control_as_in_progress() {
        let catalogue = demo();
        let model = ReadinessModel::new(&catalogue, &["demo"]).unwrap();
        let degraded = ControlState {
            assurance: Assurance::Degraded,
            ..implemented()
        };
        let r = model.compute(&states(&[("C", degraded)]));
        assert_eq!(r.framework("demo").unwrap().requirements[2].state, Partial);
    }

    #[test]
    fn everything_not_applicable_has_no_score_rather_than_a_made_up_one() {
        let catalogue = demo();
        let model = ReadinessModel::new(&catalogue, &["demo"]).unwrap();
        let na = ControlState::not_applicable("out of scope");
        let r = model.compute(&states(&[("A", na.clone()), ("B", na.clone()), ("C", na)]));
        let demo = r.framework("demo").unwrap();
        // R4 has no control, so nothing can declare it N/A: it stays missing.
        assert_eq!(demo.score, Some(0));
        assert_eq!(demo.breakdown.not_applicable, 3);

        let model = ReadinessModel::new(builtin(), &["cyber-essentials"]).unwrap();
        let all_na: HashMap<String, ControlState> = model
            .controls_in_scope("cyber-essentials")
            .into_iter()
            .map(|k| (k.to_owned(), ControlState::not_applicable("no IT at all")))
            .collect();
        let r = model.compute(&all_na);
        assert_eq!(r.frameworks[0].score, None);
        assert_eq!(r.overall.score, None);
        assert_eq!(r.overall.frameworks_scored, 0);
    }

    #[test]
    fn top_actions_are_ranked_by_the_points_they_would_add() {
        let catalogue = demo();
        let model = ReadinessModel::new(&catalogue, &["demo"]).unwrap();
        let r = model.compute(&states(&[("A", implemented())]));
        let demo = r.framework("demo").unwrap();
        let actions: Vec<_> = demo
            .top_actions
            .iter()
            .map(|a| (a.control, a.points, a.requirements_advanced))
            .collect();
        // B would complete R1 (+½) and R2 (+1) = 1.5 of 4 requirements; C completes R3.
        assert_eq!(actions, [("B", 37.5, 2), ("C", 25.0, 1)]);
        assert_eq!(demo.top_actions[0].title, "Beta");
        assert_eq!(r.overall.top_actions, demo.top_actions);
    }

    #[test]
    fn overall_is_the_mean_of_framework_percentages() {
        let catalogue = builtin();
        let model = ReadinessModel::new(catalogue, &["cyber-essentials", "uk-gdpr"]).unwrap();
        let ce_controls = model.controls_in_scope("cyber-essentials");
        let done: HashMap<String, ControlState> = ce_controls
            .iter()
            .map(|k| ((*k).to_owned(), implemented()))
            .collect();
        let r = model.compute(&done);
        let ce = r.framework("cyber-essentials").unwrap().percent.unwrap();
        let gdpr = r.framework("uk-gdpr").unwrap().percent.unwrap();
        assert_eq!(ce, 100.0);
        assert!(gdpr < 100.0);
        assert_eq!(r.overall.percent, Some((ce + gdpr) / 2.0));
        assert_eq!(r.overall.frameworks_scored, 2);
    }

    #[test]
    fn unknown_frameworks_are_refused() {
        assert_eq!(
            ReadinessModel::new(builtin(), &["nist-csf", "pci-dss"]).unwrap_err(),
            ReadinessError::UnknownFramework("pci-dss".to_owned())
        );
    }

    #[test]
    fn the_builtin_model_scores_every_assessable_requirement() {
        let catalogue = builtin();
        let model = ReadinessModel::all(catalogue);
        let r = model.compute(&HashMap::new());
        assert_eq!(r.frameworks.len(), catalogue.frameworks().len());
        for (f, fr) in catalogue.frameworks().iter().zip(&r.frameworks) {
            assert_eq!(fr.framework, f.key);
            assert_eq!(fr.requirements.len(), f.assessable().count());
            assert_eq!(fr.breakdown.total() as usize, f.assessable().count());
        }
    }

    /// The rule written out directly from the catalogue, to check the indexed computation.
    fn oracle(
        catalogue: &Catalogue,
        framework: &str,
        states: &HashMap<String, ControlState>,
    ) -> Vec<RequirementState> {
        catalogue
            .framework(framework)
            .unwrap()
            .assessable()
            .map(|r| {
                let levels: Vec<Level> = catalogue
                    .controls_for(framework, &r.ref_id)
                    .iter()
                    .map(|c| level_of(states, &c.key))
                    .collect();
                let applicable: Vec<Level> = levels
                    .iter()
                    .copied()
                    .filter(|l| *l != Level::NotApplicable)
                    .collect();
                if !levels.is_empty() && applicable.is_empty() {
                    Na
                } else if !applicable.is_empty()
                    && applicable.iter().all(|l| *l == Level::Implemented)
                {
                    Met
                } else if applicable.iter().any(|l| *l != Level::NotStarted) {
                    Partial
                } else {
                    Missing
                }
            })
            .collect()
    }

    fn arb_state() -> impl Strategy<Value = ControlState> {
        prop_oneof![
            Just(ControlState::default()),
            Just(in_progress()),
            Just(implemented()),
            Just(ControlState::not_applicable("not used here")),
            Just(ControlState {
                status: ControlStatus::NotApplicable,
                justification: None,
                ..ControlState::default()
            }),
        ]
    }

    /// A state for every built-in control (absent ones stay absent: the map is sparse).
    fn arb_states() -> impl Strategy<Value = HashMap<String, ControlState>> {
        let n = builtin().controls().len();
        proptest::collection::vec(proptest::option::of(arb_state()), n).prop_map(|v| {
            builtin()
                .controls()
                .iter()
                .zip(v)
                .filter_map(|(c, s)| Some((c.key.clone(), s?)))
                .collect()
        })
    }

    fn scores(r: &Readiness<'_>) -> Vec<(Option<f64>, Option<u8>)> {
        r.frameworks
            .iter()
            .map(|f| (f.percent, f.score))
            .chain([(r.overall.percent, r.overall.score)])
            .collect()
    }

    proptest! {
        #[test]
        fn computation_matches_the_rule_as_written(states in arb_states()) {
            let catalogue = builtin();
            let model = ReadinessModel::all(catalogue);
            let r = model.compute(&states);
            for f in &r.frameworks {
                let got: Vec<_> = f.requirements.iter().map(|q| q.state).collect();
                prop_assert_eq!(got, oracle(catalogue, f.framework, &states));
                let b = f.breakdown;
                if b.applicable() > 0 {
                    let expected = 100.0 * f64::from(2 * b.met + b.partial)
                        / f64::from(2 * b.applicable());
                    prop_assert_eq!(f.percent, Some(expected));
                    prop_assert_eq!(f.score, Some(expected.floor() as u8));
                } else {
                    prop_assert_eq!(f.score, None);
                }
            }
        }

        #[test]
        fn implementing_a_control_never_lowers_any_score(
            states in arb_states(),
            pick in any::<proptest::sample::Index>(),
        ) {
            let catalogue = builtin();
            let model = ReadinessModel::all(catalogue);
            let before = scores(&model.compute(&states));
            let control = pick.get(catalogue.controls()).key.clone();
            let mut after_states = states.clone();
            after_states.insert(control.clone(), implemented());
            let after = scores(&model.compute(&after_states));
            for (b, a) in before.iter().zip(&after) {
                // An unscored framework can only become scored, at 100.
                prop_assert!(a >= b, "{control}: {b:?} -> {a:?}");
            }
        }

        #[test]
        fn justified_not_applicable_takes_a_requirement_out_of_the_denominator(
            states in arb_states(),
            pick in any::<proptest::sample::Index>(),
        ) {
            let catalogue = builtin();
            let model = ReadinessModel::all(catalogue);
            let all: Vec<(usize, usize)> = model
                .frameworks
                .iter()
                .enumerate()
                .flat_map(|(f, fw)| (0..fw.requirements.len()).map(move |r| (f, r)))
                .collect();
            let (f, r) = *pick.get(&all);
            let before = model.compute(&states);
            let was = before.frameworks[f].requirements[r];
            let mut next = states.clone();
            let framework = &model.frameworks[f].key;
            for c in catalogue.controls_for(framework, was.ref_id) {
                next.insert(c.key.clone(), ControlState::not_applicable("we do not do this"));
            }
            let after = model.compute(&next);
            let now = &after.frameworks[f];
            prop_assert_eq!(now.requirements[r].state, Na);
            // It left the denominator (others sharing those controls may have followed).
            let (b, a) = (before.frameworks[f].breakdown, now.breakdown);
            if was.state != Na {
                prop_assert!(a.applicable() < b.applicable());
            }
            prop_assert_eq!(a.total(), b.total());
            if let Some(p) = now.percent {
                let expected =
                    100.0 * f64::from(2 * a.met + a.partial) / f64::from(2 * a.applicable());
                prop_assert_eq!(p, expected);
            }
        }

        #[test]
        fn nothing_done_scores_zero(states in arb_states()) {
            // Drop all progress but keep any N/A decisions.
            let idle: HashMap<String, ControlState> = states
                .into_iter()
                .filter(|(_, s)| s.status == ControlStatus::NotApplicable)
                .collect();
            let model = ReadinessModel::all(builtin());
            let r = model.compute(&idle);
            for f in &r.frameworks {
                prop_assert!(f.score.is_none() || f.score == Some(0));
            }
            prop_assert!(r.overall.score.is_none() || r.overall.score == Some(0));
        }

        #[test]
        fn everything_implemented_scores_one_hundred(states in arb_states()) {
            // Every control implemented except those with a justified N/A.
            let done: HashMap<String, ControlState> = builtin()
                .controls()
                .iter()
                .map(|c| match states.get(&c.key) {
                    Some(s) if s.is_justified_not_applicable() => (c.key.clone(), s.clone()),
                    _ => (c.key.clone(), implemented()),
                })
                .collect();
            let model = ReadinessModel::all(builtin());
            let r = model.compute(&done);
            for f in &r.frameworks {
                prop_assert!(f.score.is_none() || f.score == Some(100));
                prop_assert!(f.top_actions.is_empty());
            }
            prop_assert!(r.overall.score.is_none() || r.overall.score == Some(100));
        }
    }

    proptest! {
        // Each case recomputes once per action, so fewer cases cover the same ground.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn top_actions_gain_exactly_the_points_they_promise(states in arb_states()) {
            let catalogue = builtin();
            let model = ReadinessModel::all(catalogue).with_action_limit(usize::MAX);
            let r = model.compute(&states);
            for f in &r.frameworks {
                for action in &f.top_actions {
                    let mut next = states.clone();
                    next.insert(action.control.to_owned(), implemented());
                    let after = model.compute(&next);
                    let gained = after.framework(f.framework).unwrap().percent.unwrap()
                        - f.percent.unwrap();
                    prop_assert!((gained - action.points).abs() < 1e-9);
                }
                // Sorted, best first.
                prop_assert!(f.top_actions.windows(2).all(|w| w[0].points >= w[1].points));
            }
        }
    }

    #[test]
    fn an_empty_org_scores_zero_and_a_complete_one_scores_one_hundred() {
        let catalogue = builtin();
        let model = ReadinessModel::all(catalogue);
        let r = model.compute(&HashMap::new());
        assert!(r.frameworks.iter().all(|f| f.score == Some(0)));
        assert_eq!(r.overall.score, Some(0));
        assert!(!r.overall.top_actions.is_empty());
        let all: HashMap<String, ControlState> = catalogue
            .controls()
            .iter()
            .map(|c| (c.key.clone(), implemented()))
            .collect();
        let r = model.compute(&all);
        assert!(r.frameworks.iter().all(|f| f.score == Some(100)));
        assert_eq!(r.overall.score, Some(100));
    }
}
