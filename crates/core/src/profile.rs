//! Business profile and the explainable framework recommendations drawn from it.
//!
//! A recommendation's score is the sum of the points of its reasons, capped at 100, so every
//! point on screen can be traced to a sentence. The rules are deliberately few and written
//! out below; they are a starting point for a conversation with the organisation, not legal
//! advice, and the reasons say why each applies.
//!
//! | framework | rule | points |
//! |---|---|---|
//! | uk-gdpr | established in the UK (GB) and handles personal data | 100, *required by law* |
//! | uk-gdpr | outside the UK, international operations, personal data | 60 |
//! | uk-gdpr | health data (special category) | 15 |
//! | cyber-essentials | based in the UK | 40 |
//! | cyber-essentials | public sector or supplier to it | 40 |
//! | cyber-essentials | fewer than 250 employees | 10 |
//! | cyber-essentials | handles personal data | 10 |
//! | cyber-essentials | outside the UK but international | 15 |
//! | soc2 | technology / SaaS company | 35 |
//! | soc2 | based in the US | 30 |
//! | soc2 | outside the US with international operations | 15 |
//! | soc2 | technology company hosting on named cloud providers | 10 |
//! | soc2 | revenue £10m or more (enterprise procurement) | 10 |
//! | iso27001 | international operations | 35 |
//! | iso27001 | high / medium data sensitivity | 20 / 10 |
//! | iso27001 | sector whose buyers ask for it | 15 |
//! | iso27001 | 50 or more employees | 10 |
//! | iso27001 | revenue £50m or more | 10 |
//! | nist-csf | baseline for everyone | 30 |
//! | nist-csf | critical infrastructure | 40 |
//! | nist-csf | based in the US | 15 |
//! | nist-csf | high data sensitivity | 10 |
//! | any | in `planned_frameworks` | 25 |
//! | any | requirements sharing controls with frameworks already followed | up to 15 |
//!
//! Health or payment data raises the effective data sensitivity to high. A framework in
//! `existing_frameworks` is still scored (it shows why it stays worth maintaining) and is
//! flagged `already_adopted`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;

/// The sector an organisation works in, as far as framework expectations differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Industry {
    /// Software, SaaS, hosting and other technology services.
    Technology,
    FinancialServices,
    Healthcare,
    Retail,
    Manufacturing,
    Education,
    PublicSector,
    Energy,
    Telecommunications,
    ProfessionalServices,
    Nonprofit,
    Other,
}

/// Annual revenue in pounds sterling, banded so nobody has to disclose a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RevenueBand {
    /// Under £1m.
    #[serde(rename = "under_1m")]
    Under1m,
    /// £1m to under £10m.
    #[serde(rename = "1m_to_10m")]
    From1mTo10m,
    /// £10m to under £50m.
    #[serde(rename = "10m_to_50m")]
    From10mTo50m,
    /// £50m to under £250m.
    #[serde(rename = "50m_to_250m")]
    From50mTo250m,
    /// £250m and above.
    #[serde(rename = "over_250m")]
    Over250m,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSensitivity {
    Low,
    Medium,
    High,
}

/// What an organisation tells us about itself so frameworks can be recommended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessProfile {
    pub industry: Industry,
    pub employee_count: u32,
    pub revenue_band: RevenueBand,
    /// ISO 3166-1 alpha-2, capitals (`GB`, `US`, `DE`).
    pub country: String,
    pub data_sensitivity: DataSensitivity,
    pub handles_personal_data: bool,
    pub handles_payment_data: bool,
    pub handles_health_data: bool,
    pub critical_infrastructure: bool,
    pub international_operations: bool,
    /// Sells to, or is part of, the public sector (drives Cyber Essentials in the UK).
    #[serde(default)]
    pub serves_public_sector: bool,
    #[serde(default)]
    pub cloud_providers: Vec<String>,
    #[serde(default)]
    pub saas_tools: Vec<String>,
    /// Framework keys already followed or certified.
    #[serde(default)]
    pub existing_frameworks: Vec<String>,
    /// Framework keys the organisation intends to adopt.
    #[serde(default)]
    pub planned_frameworks: Vec<String>,
}

/// One thing wrong with a profile, named by its field (`cloud_providers[2]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileProblem {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid business profile: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.reason)).collect::<Vec<_>>().join("; "))]
pub struct InvalidProfile(pub Vec<ProfileProblem>);

const MAX_EMPLOYEES: u32 = 10_000_000;
const MAX_LIST: usize = 100;
const MAX_NAME: usize = 100;

impl BusinessProfile {
    /// Every problem at once, so a form can highlight them all.
    pub fn validate(&self) -> Vec<ProfileProblem> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, reason: String| {
            problems.push(ProfileProblem {
                field: field.to_owned(),
                reason,
            })
        };
        if self.employee_count == 0 || self.employee_count > MAX_EMPLOYEES {
            problem(
                "employee_count",
                format!("must be between 1 and {MAX_EMPLOYEES}"),
            );
        }
        if let Some(reason) = country_problem(&self.country) {
            problem("country", reason);
        }
        if self.handles_health_data && !self.handles_personal_data {
            problem(
                "handles_personal_data",
                "health data is personal data: set handles_personal_data too".to_owned(),
            );
        }
        for (field, list) in [
            ("cloud_providers", &self.cloud_providers),
            ("saas_tools", &self.saas_tools),
        ] {
            names_problems(field, list, &mut problem);
        }
        for (field, list) in [
            ("existing_frameworks", &self.existing_frameworks),
            ("planned_frameworks", &self.planned_frameworks),
        ] {
            let mut seen = HashSet::new();
            for (i, key) in list.iter().enumerate() {
                if !is_framework_key(key) {
                    problem(
                        &format!("{field}[{i}]"),
                        format!(
                            "'{key}' is not a framework key (lower-case letters, digits, '-' and '.')"
                        ),
                    );
                } else if !seen.insert(key) {
                    problem(&format!("{field}[{i}]"), format!("'{key}' is listed twice"));
                }
            }
        }
        for (i, key) in self.planned_frameworks.iter().enumerate() {
            if self.existing_frameworks.contains(key) {
                problem(
                    &format!("planned_frameworks[{i}]"),
                    format!("'{key}' is already in existing_frameworks"),
                );
            }
        }
        problems
    }

    /// `validate` as a `Result`, for callers that stop at the first invalid profile.
    pub fn check(&self) -> Result<(), InvalidProfile> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidProfile(problems))
        }
    }

    /// Declared sensitivity, raised to high by health or payment data.
    pub fn effective_sensitivity(&self) -> DataSensitivity {
        if self.handles_health_data || self.handles_payment_data {
            DataSensitivity::High
        } else {
            self.data_sensitivity
        }
    }

    fn in_uk(&self) -> bool {
        self.country == "GB"
    }

    fn in_us(&self) -> bool {
        self.country == "US"
    }

    fn public_sector(&self) -> bool {
        self.serves_public_sector || self.industry == Industry::PublicSector
    }
}

fn country_problem(country: &str) -> Option<String> {
    if country == "UK" {
        Some("the ISO 3166 code for the United Kingdom is GB".to_owned())
    } else if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        Some(format!(
            "'{country}' is not an ISO 3166-1 alpha-2 code (two capital letters, e.g. GB)"
        ))
    } else {
        None
    }
}

fn names_problems(field: &str, list: &[String], problem: &mut impl FnMut(&str, String)) {
    if list.len() > MAX_LIST {
        problem(field, format!("at most {MAX_LIST} entries"));
    }
    let mut seen = HashSet::new();
    for (i, name) in list.iter().enumerate() {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            problem(&format!("{field}[{i}]"), "must not be blank".to_owned());
        } else if trimmed.chars().count() > MAX_NAME {
            problem(
                &format!("{field}[{i}]"),
                format!("at most {MAX_NAME} characters"),
            );
        } else if !seen.insert(trimmed.to_lowercase()) {
            problem(
                &format!("{field}[{i}]"),
                format!("'{trimmed}' is listed twice"),
            );
        }
    }
}

fn is_framework_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// How urgently a framework is worth taking on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A legal obligation applies (ordered first).
    RequiredByLaw,
    /// Score 70 and above.
    High,
    /// Score 40 to 69.
    Medium,
    /// Below 40.
    Low,
}

/// One sentence of explanation and the points it contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub points: u8,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameworkRecommendation {
    /// Framework key.
    pub framework: String,
    pub name: String,
    /// Sum of the reasons' points, capped at 100.
    pub score: u8,
    pub priority: Priority,
    pub already_adopted: bool,
    pub reasons: Vec<Reason>,
}

/// Every framework of the catalogue, scored for this profile and ordered by priority, then
/// score, then catalogue order. A framework no rule speaks for is listed with score 0 and
/// a reason saying so, so the list is complete and nothing is silently dropped.
pub fn recommend(profile: &BusinessProfile, catalogue: &Catalogue) -> Vec<FrameworkRecommendation> {
    let mut recommendations: Vec<(usize, FrameworkRecommendation)> = catalogue
        .frameworks()
        .iter()
        .enumerate()
        .map(|(i, framework)| {
            let mut rules = Rules::default();
            match framework.key.as_str() {
                "uk-gdpr" => uk_gdpr(profile, &mut rules),
                "cyber-essentials" => cyber_essentials(profile, &mut rules),
                "soc2" => soc2(profile, &mut rules),
                "iso27001" => iso27001(profile, &mut rules),
                "nist-csf" => nist_csf(profile, &mut rules),
                _ => {}
            }
            if profile.planned_frameworks.contains(&framework.key) {
                rules.add(25, "you plan to adopt it");
            }
            shared_controls(profile, catalogue, &framework.key, &mut rules);
            if rules.reasons.is_empty() {
                rules.add(0, "nothing in the profile points to this framework");
            }
            let score = rules
                .reasons
                .iter()
                .map(|r| u32::from(r.points))
                .sum::<u32>()
                .min(100);
            let score = u8::try_from(score).expect("capped at 100");
            let priority = if rules.required_by_law {
                Priority::RequiredByLaw
            } else if score >= 70 {
                Priority::High
            } else if score >= 40 {
                Priority::Medium
            } else {
                Priority::Low
            };
            (
                i,
                FrameworkRecommendation {
                    framework: framework.key.clone(),
                    name: framework.name.clone(),
                    score,
                    priority,
                    already_adopted: profile.existing_frameworks.contains(&framework.key),
                    reasons: rules.reasons,
                },
            )
        })
        .collect();
    recommendations.sort_by(|(i, a), (j, b)| {
        a.priority
            .cmp(&b.priority)
            .then(b.score.cmp(&a.score))
            .then(i.cmp(j))
    });
    recommendations.into_iter().map(|(_, r)| r).collect()
}

#[derive(Default)]
struct Rules {
    reasons: Vec<Reason>,
    required_by_law: bool,
}

impl Rules {
    fn add(&mut self, points: u8, text: impl Into<String>) {
        self.reasons.push(Reason {
            points,
            text: text.into(),
        });
    }
}

fn uk_gdpr(p: &BusinessProfile, rules: &mut Rules) {
    if p.handles_personal_data && p.in_uk() {
        rules.required_by_law = true;
        rules.add(
            100,
            "required by law: UK GDPR applies to organisations established in the UK that process personal data",
        );
    } else if p.handles_personal_data && p.international_operations {
        rules.add(
            60,
            "offering goods or services to people in the UK, or monitoring them, brings UK GDPR into scope from abroad",
        );
    }
    if p.handles_health_data {
        rules.add(
            15,
            "health data is special category data: it needs an extra lawful condition and usually a DPIA",
        );
    }
}

fn cyber_essentials(p: &BusinessProfile, rules: &mut Rules) {
    if p.in_uk() {
        rules.add(
            40,
            "the UK government's baseline scheme against common internet attacks, quick and inexpensive to certify",
        );
    } else if p.international_operations {
        rules.add(15, "a UK scheme: relevant if you sell to UK organisations");
    }
    if p.public_sector() {
        rules.add(
            40,
            "UK central government requires Cyber Essentials from suppliers handling personal data or providing ICT services",
        );
    }
    if p.employee_count < 250 {
        rules.add(10, "sized for small and medium organisations");
    }
    if p.handles_personal_data {
        rules.add(
            10,
            "its five technical controls prevent the common attacks that lead to personal data breaches",
        );
    }
}

fn soc2(p: &BusinessProfile, rules: &mut Rules) {
    if p.industry == Industry::Technology {
        rules.add(
            35,
            "customers of SaaS and other service organisations commonly ask for a SOC 2 report",
        );
        if !p.cloud_providers.is_empty() {
            rules.add(
                10,
                format!(
                    "customer data hosted on {} is what a SOC 2 examination covers",
                    p.cloud_providers.join(", ")
                ),
            );
        }
    }
    if p.in_us() {
        rules.add(
            30,
            "SOC 2 is the assurance report US enterprise buyers expect",
        );
    } else if p.international_operations {
        rules.add(
            15,
            "selling to US enterprises usually means answering for SOC 2",
        );
    }
    if p.revenue_band >= RevenueBand::From10mTo50m {
        rules.add(
            10,
            "at this size enterprise procurement reviews ask for independent assurance",
        );
    }
}

fn iso27001(p: &BusinessProfile, rules: &mut Rules) {
    if p.international_operations {
        rules.add(
            35,
            "the information security certification recognised by customers in every market",
        );
    }
    match p.effective_sensitivity() {
        DataSensitivity::High => rules.add(
            20,
            "highly sensitive data (declared, or health or payment data) calls for a managed ISMS",
        ),
        DataSensitivity::Medium => rules.add(10, "moderately sensitive data benefits from an ISMS"),
        DataSensitivity::Low => {}
    }
    if matches!(
        p.industry,
        Industry::FinancialServices
            | Industry::Healthcare
            | Industry::Technology
            | Industry::Telecommunications
    ) {
        rules.add(
            15,
            "buyers in this sector commonly require ISO 27001 certification in procurement",
        );
    }
    if p.employee_count >= 50 {
        rules.add(
            10,
            "with 50 or more people, an ISMS gives security work a structure that lasts",
        );
    }
    if p.revenue_band >= RevenueBand::From50mTo250m {
        rules.add(
            10,
            "larger contracts routinely make certification a condition",
        );
    }
}

fn nist_csf(p: &BusinessProfile, rules: &mut Rules) {
    rules.add(
        30,
        "a free, outcome-based baseline any organisation can use to structure its security programme",
    );
    if p.critical_infrastructure {
        rules.add(
            40,
            "written for critical infrastructure operators; sector regulators and bodies refer to it",
        );
    }
    if p.in_us() {
        rules.add(15, "widely referenced by US regulators and customers");
    }
    if p.effective_sensitivity() == DataSensitivity::High {
        rules.add(
            10,
            "its Identify and Protect functions help prioritise protection of sensitive data",
        );
    }
}

/// Up to 15 points for the share of this framework's requirements already served by
/// controls of frameworks the organisation follows: common controls make that work count.
fn shared_controls(p: &BusinessProfile, catalogue: &Catalogue, key: &str, rules: &mut Rules) {
    let existing: Vec<&str> = p
        .existing_frameworks
        .iter()
        .map(String::as_str)
        .filter(|e| *e != key && catalogue.framework(e).is_some())
        .collect();
    let Some(framework) = catalogue.framework(key) else {
        return;
    };
    if existing.is_empty() {
        return;
    }
    let (mut shared, mut total) = (0u32, 0u32);
    for requirement in framework.assessable() {
        total += 1;
        let served = catalogue
            .controls_for(key, &requirement.ref_id)
            .iter()
            .any(|c| {
                c.maps_to
                    .iter()
                    .any(|r| existing.contains(&r.framework.as_str()))
            });
        shared += u32::from(served);
    }
    if total == 0 || shared == 0 {
        return;
    }
    let points = u8::try_from(15 * shared / total).expect("at most 15");
    rules.add(
        points,
        format!(
            "{shared} of its {total} requirements share controls with {} you already follow",
            existing.join(", ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::builtin;

    fn profile() -> BusinessProfile {
        BusinessProfile {
            industry: Industry::Other,
            employee_count: 20,
            revenue_band: RevenueBand::Under1m,
            country: "FR".to_owned(),
            data_sensitivity: DataSensitivity::Low,
            handles_personal_data: false,
            handles_payment_data: false,
            handles_health_data: false,
            critical_infrastructure: false,
            international_operations: false,
            serves_public_sector: false,
            cloud_providers: vec![],
            saas_tools: vec![],
            existing_frameworks: vec![],
            planned_frameworks: vec![],
        }
    }

    fn rec(p: &BusinessProfile, key: &str) -> FrameworkRecommendation {
        recommend(p, builtin())
            .into_iter()
            .find(|r| r.framework == key)
            .unwrap_or_else(|| panic!("{key} missing"))
    }

    fn mentions(r: &FrameworkRecommendation, words: &str) -> bool {
        r.reasons.iter().any(|x| x.text.contains(words))
    }

    #[test]
    fn a_valid_profile_has_no_problems_and_round_trips_through_json() {
        let p = BusinessProfile {
            country: "GB".to_owned(),
            cloud_providers: vec!["AWS".to_owned(), "Azure".to_owned()],
            existing_frameworks: vec!["cyber-essentials".to_owned()],
            planned_frameworks: vec!["iso27001".to_owned()],
            ..profile()
        };
        assert_eq!(p.validate(), []);
        assert_eq!(p.check(), Ok(()));
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"industry\":\"other\""));
        assert!(json.contains("\"revenue_band\":\"under_1m\""));
        assert_eq!(serde_json::from_str::<BusinessProfile>(&json).unwrap(), p);
    }

    #[test]
    fn validation_reports_every_problem_with_its_field() {
        let p = BusinessProfile {
            employee_count: 0,
            country: "UK".to_owned(),
            handles_health_data: true,
            cloud_providers: vec!["AWS".to_owned(), " ".to_owned(), "aws".to_owned()],
            saas_tools: vec!["x".repeat(101)],
            existing_frameworks: vec!["ISO 27001".to_owned(), "soc2".to_owned()],
            planned_frameworks: vec!["soc2".to_owned(), "soc2".to_owned()],
            ..profile()
        };
        let fields: Vec<String> = p.validate().into_iter().map(|x| x.field).collect();
        assert_eq!(
            fields,
            [
                "employee_count",
                "country",
                "handles_personal_data",
                "cloud_providers[1]",
                "cloud_providers[2]",
                "saas_tools[0]",
                "existing_frameworks[0]",
                "planned_frameworks[1]",
                "planned_frameworks[0]",
                "planned_frameworks[1]",
            ]
        );
        assert!(p.check().unwrap_err().to_string().contains("GB"));
    }

    #[test]
    fn country_must_be_two_capital_letters() {
        for bad in ["gb", "GBR", "G", "", "G1", "ÉU"] {
            let p = BusinessProfile {
                country: bad.to_owned(),
                ..profile()
            };
            assert_eq!(p.validate().len(), 1, "{bad}");
        }
    }

    #[test]
    fn unknown_enum_values_are_rejected_when_read() {
        let mut v = serde_json::to_value(profile()).unwrap();
        v["data_sensitivity"] = "extreme".into();
        assert!(serde_json::from_value::<BusinessProfile>(v).is_err());
    }

    #[test]
    fn uk_personal_data_makes_uk_gdpr_required_by_law() {
        let p = BusinessProfile {
            country: "GB".to_owned(),
            handles_personal_data: true,
            ..profile()
        };
        let r = rec(&p, "uk-gdpr");
        assert_eq!((r.score, r.priority), (100, Priority::RequiredByLaw));
        assert!(mentions(&r, "required by law"));
        assert_eq!(recommend(&p, builtin())[0].framework, "uk-gdpr");
        // Without personal data, no legal obligation is claimed.
        let r = rec(
            &BusinessProfile {
                handles_personal_data: false,
                ..p
            },
            "uk-gdpr",
        );
        assert_ne!(r.priority, Priority::RequiredByLaw);
        assert_eq!(r.score, 0);
    }

    #[test]
    fn uk_gdpr_reaches_foreign_organisations_with_international_operations() {
        let p = BusinessProfile {
            handles_personal_data: true,
            international_operations: true,
            handles_health_data: true,
            ..profile()
        };
        let r = rec(&p, "uk-gdpr");
        assert_eq!(r.score, 75);
        assert_eq!(r.priority, Priority::High);
        assert!(mentions(&r, "special category"));
    }

    #[test]
    fn uk_public_sector_suppliers_get_cyber_essentials_high() {
        let base = BusinessProfile {
            country: "GB".to_owned(),
            ..profile()
        };
        let plain = rec(&base, "cyber-essentials");
        let supplier = rec(
            &BusinessProfile {
                serves_public_sector: true,
                ..base.clone()
            },
            "cyber-essentials",
        );
        assert_eq!(plain.score, 50);
        assert_eq!(supplier.score, 90);
        assert_eq!(supplier.priority, Priority::High);
        assert!(mentions(&supplier, "central government"));
        let public_body = rec(
            &BusinessProfile {
                industry: Industry::PublicSector,
                ..base
            },
            "cyber-essentials",
        );
        assert_eq!(public_body.score, 90);
    }

    #[test]
    fn us_saas_companies_get_soc2() {
        let p = BusinessProfile {
            industry: Industry::Technology,
            country: "US".to_owned(),
            cloud_providers: vec!["AWS".to_owned()],
            revenue_band: RevenueBand::From10mTo50m,
            ..profile()
        };
        let r = rec(&p, "soc2");
        assert_eq!(r.score, 85);
        assert!(mentions(&r, "hosted on AWS"));
        assert!(rec(&profile(), "soc2").score < 40);
    }

    #[test]
    fn international_sensitive_operations_get_iso27001() {
        let p = BusinessProfile {
            international_operations: true,
            handles_payment_data: true,
            industry: Industry::FinancialServices,
            employee_count: 80,
            ..profile()
        };
        let r = rec(&p, "iso27001");
        assert_eq!(r.score, 35 + 20 + 15 + 10);
        assert!(mentions(&r, "payment"));
        assert_eq!(rec(&profile(), "iso27001").score, 0);
    }

    #[test]
    fn csf_is_a_baseline_raised_for_critical_infrastructure() {
        let base = rec(&profile(), "nist-csf");
        assert_eq!((base.score, base.priority), (30, Priority::Low));
        let ci = rec(
            &BusinessProfile {
                critical_infrastructure: true,
                ..profile()
            },
            "nist-csf",
        );
        assert_eq!((ci.score, ci.priority), (70, Priority::High));
    }

    #[test]
    fn plans_and_shared_controls_add_explained_points() {
        let p = BusinessProfile {
            existing_frameworks: vec!["iso27001".to_owned()],
            planned_frameworks: vec!["soc2".to_owned()],
            ..profile()
        };
        let r = rec(&p, "soc2");
        assert!(mentions(&r, "you plan to adopt it"));
        assert!(mentions(&r, "share controls with iso27001"));
        assert!(r.score > 25);
        assert!(rec(&p, "iso27001").already_adopted);
        assert!(!r.already_adopted);
    }

    #[test]
    fn every_score_is_the_sum_of_its_reasons_and_every_framework_is_listed() {
        let profiles = [
            profile(),
            BusinessProfile {
                country: "GB".to_owned(),
                industry: Industry::Technology,
                handles_personal_data: true,
                handles_health_data: true,
                international_operations: true,
                critical_infrastructure: true,
                serves_public_sector: true,
                revenue_band: RevenueBand::Over250m,
                employee_count: 5000,
                existing_frameworks: vec!["nist-csf".to_owned()],
                ..profile()
            },
        ];
        for p in &profiles {
            let all = recommend(p, builtin());
            assert_eq!(all.len(), builtin().frameworks().len());
            for r in &all {
                let sum: u32 = r.reasons.iter().map(|x| u32::from(x.points)).sum();
                assert_eq!(u32::from(r.score), sum.min(100), "{}", r.framework);
                assert!(!r.reasons.is_empty());
            }
            assert!(all.windows(2).all(|w| (w[0].priority, 100 - w[0].score)
                <= (w[1].priority, 100 - w[1].score)));
        }
    }
}
