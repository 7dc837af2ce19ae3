//! Where the offline provider finds catalogue text: a trait the catalogue implements, and a
//! small built-in source (a few UK Cyber Essentials requirements) for tests and for a bare
//! start before any framework pack is loaded.

/// A requirement or control as the offline provider needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnowledgeEntry {
    pub id: String,
    pub framework: String,
    pub title: String,
    pub description: String,
    pub guidance: String,
    /// Words that suggest evidence belongs to this entry (lower case).
    pub keywords: Vec<String>,
}

pub trait KnowledgeSource: Send + Sync {
    /// The entry with this id (exact, case-insensitive).
    fn lookup(&self, id: &str) -> Option<KnowledgeEntry>;
    /// Entries relevant to free text, most relevant first.
    fn search(&self, text: &str, limit: usize) -> Vec<KnowledgeEntry>;
}

/// Ids mentioned in `text` that `source` knows, in order of appearance.
pub fn mentioned_ids(source: &dyn KnowledgeSource, text: &str) -> Vec<KnowledgeEntry> {
    let mut out: Vec<KnowledgeEntry> = Vec::new();
    for token in text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '?' | '"' | '\''))
    {
        let token = token.trim_end_matches(['.', ':']);
        if token.len() < 2 {
            continue;
        }
        if let Some(e) = source.lookup(token)
            && !out.iter().any(|o| o.id == e.id)
        {
            out.push(e);
        }
    }
    out
}

/// A fixed list of entries with keyword search.
pub struct StaticKnowledge {
    entries: Vec<KnowledgeEntry>,
}

impl StaticKnowledge {
    pub fn new(entries: Vec<KnowledgeEntry>) -> Self {
        Self { entries }
    }

    /// Five Cyber Essentials technical control themes, written for this project.
    pub fn builtin() -> Self {
        let e = |id: &str, title: &str, description: &str, guidance: &str, kw: &[&str]| {
            KnowledgeEntry {
                id: id.into(),
                framework: "UK Cyber Essentials".into(),
                title: title.into(),
                description: description.into(),
                guidance: guidance.into(),
                keywords: kw.iter().map(|k| k.to_string()).collect(),
            }
        };
        Self::new(vec![
            e(
                "CE-FW",
                "Firewalls",
                "Every device that can reach the internet is protected by a correctly configured firewall or router with firewall functions.",
                "Change default administrative passwords on boundary devices, block unauthenticated inbound connections by default, document every inbound rule with a business reason, and review the rules regularly.",
                &[
                    "firewall", "router", "inbound", "port", "boundary", "network",
                ],
            ),
            e(
                "CE-SC",
                "Secure configuration",
                "Computers and network devices are configured to reduce vulnerabilities and provide only the services required.",
                "Remove unused software and accounts, change default passwords, disable auto-run, and require authentication before users reach data or services.",
                &[
                    "configuration",
                    "default password",
                    "hardening",
                    "baseline",
                    "autorun",
                    "auto-run",
                ],
            ),
            e(
                "CE-UAC",
                "User access control",
                "User accounts are assigned to authorised individuals only and give access only to what they need; administrative access is restricted.",
                "Keep a list of accounts, remove leavers promptly, use separate administrator accounts for admin work only, and enforce multi-factor authentication for cloud services.",
                &[
                    "mfa",
                    "multi-factor",
                    "2fa",
                    "account",
                    "access",
                    "admin",
                    "administrator",
                    "password",
                    "login",
                    "sso",
                ],
            ),
            e(
                "CE-MP",
                "Malware protection",
                "Devices are protected from malware by anti-malware software or application allow-listing.",
                "Keep anti-malware software updated and scanning files on access and web pages when browsing, or allow only approved applications to run.",
                &[
                    "malware",
                    "antivirus",
                    "anti-virus",
                    "defender",
                    "endpoint",
                    "allow-list",
                    "edr",
                ],
            ),
            e(
                "CE-SUM",
                "Security update management",
                "Software is licensed, supported and kept up to date; high-risk and critical updates are installed within 14 days.",
                "Enable automatic updates where possible, remove unsupported software, and track critical and high-risk patches until they are installed.",
                &[
                    "patch",
                    "update",
                    "vulnerability",
                    "unsupported",
                    "version",
                    "cve",
                ],
            ),
        ])
    }
}

impl KnowledgeSource for StaticKnowledge {
    fn lookup(&self, id: &str) -> Option<KnowledgeEntry> {
        self.entries
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(id))
            .cloned()
    }

    fn search(&self, text: &str, limit: usize) -> Vec<KnowledgeEntry> {
        let lower = text.to_lowercase();
        let mut scored: Vec<(usize, usize, &KnowledgeEntry)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let hits = e
                    .keywords
                    .iter()
                    .filter(|k| lower.contains(k.as_str()))
                    .count()
                    + usize::from(lower.contains(&e.title.to_lowercase()));
                (hits, i, e)
            })
            .filter(|(h, _, _)| *h > 0)
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(limit)
            .map(|(_, _, e)| e.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_search() {
        let k = StaticKnowledge::builtin();
        assert_eq!(k.lookup("ce-uac").unwrap().title, "User access control");
        let hits = k.search("Screenshot of MFA enforced for all admin accounts", 3);
        assert_eq!(hits[0].id, "CE-UAC");
        assert!(k.search("lunch menu", 3).is_empty());
        let ids: Vec<String> = mentioned_ids(&k, "What does CE-FW mean, and CE-MP?")
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec!["CE-FW", "CE-MP"]);
    }
}

/// The built-in compliance catalogue (frameworks and common controls) as the offline
/// provider's knowledge. Ids are requirement refs (`GV.OC-01`, `A.5.1`, `CC6.1`, also
/// `framework:ref` to disambiguate) and control keys (`IAM-01`).
pub struct CatalogueKnowledge {
    entries: Vec<KnowledgeEntry>,
    /// Lower-cased id -> index; bare refs map to their first framework's requirement.
    by_id: std::collections::HashMap<String, usize>,
    /// Lower-cased title and description per entry, for search.
    haystacks: Vec<(String, String)>,
}

impl CatalogueKnowledge {
    pub fn new(catalogue: &assay_core::catalogue::Catalogue) -> Self {
        let mut entries = Vec::new();
        for fw in catalogue.frameworks() {
            for req in fw.requirements.iter().filter(|r| r.assessable) {
                let guidance = catalogue
                    .controls_for(&fw.key, &req.ref_id)
                    .first()
                    .map(|c| format!("{} ({}): {}", c.title, c.key, c.guidance))
                    .unwrap_or_default();
                entries.push(KnowledgeEntry {
                    id: format!("{}:{}", fw.key, req.ref_id),
                    framework: fw.name.clone(),
                    title: format!("{} {}", req.ref_id, req.title),
                    description: req.description.clone(),
                    guidance,
                    keywords: keywords(&req.title),
                });
            }
        }
        for c in catalogue.controls() {
            entries.push(KnowledgeEntry {
                id: c.key.clone(),
                framework: "Assay common controls".into(),
                title: c.title.clone(),
                description: c.description.clone(),
                guidance: c.guidance.clone(),
                keywords: keywords(&c.title),
            });
        }
        let mut by_id = std::collections::HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_id.insert(e.id.to_lowercase(), i);
            if let Some((_, bare)) = e.id.split_once(':') {
                by_id.entry(bare.to_lowercase()).or_insert(i);
            }
        }
        let haystacks = entries
            .iter()
            .map(|e| (e.title.to_lowercase(), e.description.to_lowercase()))
            .collect();
        Self {
            entries,
            by_id,
            haystacks,
        }
    }

    /// Over the packs embedded in the binary.
    pub fn builtin() -> Self {
        Self::new(assay_core::catalogue::builtin())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Significant words of a title (4+ letters), lower-cased.
fn keywords(title: &str) -> Vec<String> {
    title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(str::to_lowercase)
        .collect()
}

impl KnowledgeSource for CatalogueKnowledge {
    fn lookup(&self, id: &str) -> Option<KnowledgeEntry> {
        self.by_id
            .get(&id.to_lowercase())
            .map(|&i| self.entries[i].clone())
    }

    fn search(&self, text: &str, limit: usize) -> Vec<KnowledgeEntry> {
        let words: Vec<String> = keywords(text);
        if words.is_empty() {
            return Vec::new();
        }
        // Title matches weigh more than description matches; ties keep catalogue order.
        let mut scored: Vec<(usize, usize)> = self
            .haystacks
            .iter()
            .enumerate()
            .filter_map(|(i, (title, description))| {
                let score: usize = words
                    .iter()
                    .map(|w| {
                        3 * usize::from(title.contains(w.as_str()))
                            + usize::from(description.contains(w.as_str()))
                    })
                    .sum();
                (score > 0).then_some((i, score))
            })
            .collect();
        scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
            .into_iter()
            .take(limit)
            .map(|(i, _)| self.entries[i].clone())
            .collect()
    }
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;

    #[test]
    fn builtin_catalogue_answers_lookups_and_searches() {
        let k = CatalogueKnowledge::builtin();
        assert!(k.len() > 400, "{}", k.len());
        let csf = k.lookup("GV.OC-01").expect("CSF subcategory by bare ref");
        assert!(csf.title.starts_with("GV.OC-01"));
        assert!(
            !csf.guidance.is_empty(),
            "requirements carry the guidance of a covering control"
        );
        assert!(k.lookup("iso27001:A.5.1").is_some());
        assert!(k.lookup("no-such-thing").is_none());
        let hits = k.search(
            "how do we enforce multi-factor authentication for administrators",
            5,
        );
        assert!(!hits.is_empty());
        assert!(
            hits.iter().any(|e| e.title.to_lowercase().contains("auth")
                || e.description.to_lowercase().contains("multi-factor")),
            "{hits:?}"
        );
    }
}
