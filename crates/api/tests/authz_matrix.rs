//! The authorisation matrix: every operation of the route table (the OpenAPI description,
//! see tests/openapi.rs) x every role x own organisation / another organisation, plus no
//! credential at all, against the status the policy in `assay_core::access` implies:
//!
//! - public operations answer 2xx without a credential (and with one);
//! - every other operation answers 401 without a credential;
//! - operations on no organisation answer 2xx to any signed-in person;
//! - organisation operations answer 2xx when the caller's role there holds the permission,
//!   403 `forbidden` when it does not, and 404 `not_found` for an organisation the caller
//!   is not a member of.
//!
//! An operation in the route table without an entry in [`expectations`] fails the test, so a
//! new endpoint cannot ship without its row. One app and one set of members serve the whole
//! matrix; calls that destroy something (removing a member, revoking a key or an invitation,
//! logging out) get a fresh target each, so the order of the cells does not matter.

mod support;

use assay_core::Role;
use assay_core::access::Permission;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{PASSWORD, TestApp};

/// Who may call an operation.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// No credential needed.
    Public,
    /// Any signed-in person; no organisation in the path.
    SignedIn,
    /// A member of the organisation in the path whose role holds the permission.
    Org(Permission),
    /// A person whose account is a platform admin (no member of the matrix is one: every
    /// role answers 403; tests/imports.rs covers the admin).
    PlatformAdmin,
    /// An organisation API key with the `ai` scope (or `admin`, which implies it); the
    /// organisation is the key's. People's access tokens answer 401, a key without the
    /// scope 403 (the OpenAI-compatible endpoint, B-4).
    AiKey,
}

/// The policy, one row per operation. Written out rather than read from the handlers, so
/// that a handler guarding itself with the wrong permission fails here.
fn expectations() -> BTreeMap<(&'static str, &'static str), Access> {
    use Access::*;
    use Permission as P;
    BTreeMap::from([
        (("GET", "/health/live"), Public),
        (("GET", "/health/ready"), Public),
        (("GET", "/api/v1/openapi.json"), Public),
        (("POST", "/api/v1/auth/register"), Public),
        (("POST", "/api/v1/auth/login"), Public),
        (("POST", "/api/v1/auth/refresh"), Public),
        (("POST", "/api/v1/auth/logout"), SignedIn),
        (("POST", "/api/v1/auth/logout-all"), SignedIn),
        (("GET", "/api/v1/me"), SignedIn),
        (("GET", "/api/v1/orgs"), SignedIn),
        (("POST", "/api/v1/orgs"), SignedIn),
        (("POST", "/api/v1/invitations/{token}/accept"), SignedIn),
        (("GET", "/api/v1/orgs/{org_id}"), Org(P::OrgRead)),
        (("PATCH", "/api/v1/orgs/{org_id}"), Org(P::OrgUpdate)),
        (
            ("GET", "/api/v1/orgs/{org_id}/members"),
            Org(P::MembersRead),
        ),
        (
            ("PATCH", "/api/v1/orgs/{org_id}/members/{user_id}"),
            Org(P::MembersManage),
        ),
        (
            ("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}"),
            Org(P::MembersManage),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/invitations"),
            Org(P::InvitationsManage),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/invitations"),
            Org(P::InvitationsManage),
        ),
        (
            (
                "DELETE",
                "/api/v1/orgs/{org_id}/invitations/{invitation_id}",
            ),
            Org(P::InvitationsManage),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/api-keys"),
            Org(P::ApiKeysManage),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/api-keys"),
            Org(P::ApiKeysManage),
        ),
        (
            ("DELETE", "/api/v1/orgs/{org_id}/api-keys/{key_id}"),
            Org(P::ApiKeysManage),
        ),
        (("GET", "/api/v1/orgs/{org_id}/audit"), Org(P::AuditRead)),
        (
            ("GET", "/api/v1/orgs/{org_id}/audit/verify"),
            Org(P::AuditRead),
        ),
        (("GET", "/api/v1/frameworks"), SignedIn),
        (("GET", "/api/v1/frameworks/{key}"), SignedIn),
        (
            ("GET", "/api/v1/orgs/{org_id}/frameworks"),
            Org(P::FrameworksRead),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/frameworks/{key}"),
            Org(P::FrameworksRead),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/frameworks/{key}/export"),
            Org(P::FrameworksRead),
        ),
        (
            ("PUT", "/api/v1/orgs/{org_id}/frameworks/{key}"),
            Org(P::FrameworksAdopt),
        ),
        (
            ("DELETE", "/api/v1/orgs/{org_id}/frameworks/{key}"),
            Org(P::FrameworksAdopt),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/controls"),
            Org(P::ControlsRead),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/controls/{key}"),
            Org(P::ControlsRead),
        ),
        (
            ("PATCH", "/api/v1/orgs/{org_id}/controls/{key}"),
            Org(P::ControlsWrite),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/controls/bulk"),
            Org(P::ControlsWrite),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/controls/export"),
            Org(P::ReportsExport),
        ),
        (("GET", "/api/v1/orgs/{org_id}/profile"), Org(P::OrgRead)),
        (("PUT", "/api/v1/orgs/{org_id}/profile"), Org(P::OrgUpdate)),
        (
            ("GET", "/api/v1/orgs/{org_id}/framework-recommendations"),
            Org(P::OrgRead),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/readiness"),
            Org(P::FrameworksRead),
        ),
        (("POST", "/api/v1/orgs/{org_id}/ai/help"), Org(P::AiUse)),
        (
            ("POST", "/api/v1/orgs/{org_id}/ai/gap-analysis"),
            Org(P::AiUse),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/ai/policy-draft"),
            Org(P::AiUse),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/ai/classify-evidence"),
            Org(P::AiUse),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/ai/classifications"),
            Org(P::EvidenceRead),
        ),
        (
            (
                "GET",
                "/api/v1/orgs/{org_id}/ai/classifications/{classification_id}",
            ),
            Org(P::EvidenceRead),
        ),
        (
            (
                "POST",
                "/api/v1/orgs/{org_id}/ai/classifications/{classification_id}/review",
            ),
            Org(P::EvidenceWrite),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/readiness/history"),
            Org(P::FrameworksRead),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/assessments"),
            Org(P::AssessmentsRead),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/assessments"),
            Org(P::AssessmentsWrite),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/assessments/{assessment_id}"),
            Org(P::AssessmentsRead),
        ),
        (
            (
                "DELETE",
                "/api/v1/orgs/{org_id}/assessments/{assessment_id}",
            ),
            Org(P::AssessmentsWrite),
        ),
        (
            (
                "PUT",
                "/api/v1/orgs/{org_id}/assessments/{assessment_id}/answers/{question_id}",
            ),
            Org(P::AssessmentsWrite),
        ),
        (
            (
                "POST",
                "/api/v1/orgs/{org_id}/assessments/{assessment_id}/complete",
            ),
            Org(P::AssessmentsWrite),
        ),
        // Confirming also needs controls.write, which every role with assessments.write has.
        (
            (
                "POST",
                "/api/v1/orgs/{org_id}/assessments/{assessment_id}/confirm",
            ),
            Org(P::AssessmentsWrite),
        ),
        (("GET", "/api/v1/frameworks/{key}/export"), SignedIn),
        (("POST", "/v1/chat/completions"), AiKey),
        (("GET", "/v1/models"), AiKey),
        (
            ("POST", "/api/v1/orgs/{org_id}/frameworks/import"),
            Org(P::FrameworksImport),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/frameworks/imports"),
            Org(P::FrameworksRead),
        ),
        (
            ("DELETE", "/api/v1/orgs/{org_id}/frameworks/imports/{key}"),
            Org(P::FrameworksImport),
        ),
        (("POST", "/api/v1/frameworks/import"), PlatformAdmin),
        (
            ("GET", "/api/v1/orgs/{org_id}/ai/settings"),
            Org(P::AiAdmin),
        ),
        (
            ("PUT", "/api/v1/orgs/{org_id}/ai/settings"),
            Org(P::AiAdmin),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/ai/safety-reviews"),
            Org(P::AiAdmin),
        ),
        (
            (
                "POST",
                "/api/v1/orgs/{org_id}/ai/safety-reviews/{review_id}/resolve",
            ),
            Org(P::AiAdmin),
        ),
        (
            ("GET", "/api/v1/orgs/{org_id}/ai/conversations"),
            Org(P::AiUse),
        ),
        (
            ("POST", "/api/v1/orgs/{org_id}/ai/conversations"),
            Org(P::AiUse),
        ),
        (
            (
                "GET",
                "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}",
            ),
            Org(P::AiUse),
        ),
        (
            (
                "DELETE",
                "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}",
            ),
            Org(P::AiUse),
        ),
        (
            (
                "POST",
                "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}/messages",
            ),
            Org(P::AiUse),
        ),
    ])
}

#[derive(Clone, Debug)]
struct Person {
    email: String,
    access: String,
    user_id: String,
}

/// An organisation with its founder and a viewer to act on.
struct Org {
    id: String,
    owner: Person,
    viewer: Person,
}

struct Fixture {
    app: TestApp,
    /// The organisation every role belongs to.
    own: Org,
    /// An organisation none of them belongs to.
    other: Org,
    members: HashMap<Role, Person>,
    counter: AtomicUsize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    Own,
    Other,
}

/// What a cell expects.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Success,
    Unauthenticated,
    Forbidden,
    NotFound,
}

impl Expect {
    fn holds(self, status: u16, code: &str) -> bool {
        match self {
            Expect::Success => (200..300).contains(&status),
            Expect::Unauthenticated => status == 401,
            Expect::Forbidden => status == 403 && code == "forbidden",
            Expect::NotFound => status == 404 && code == "not_found",
        }
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

impl Fixture {
    async fn new() -> Fixture {
        let app = TestApp::builder()
            .config(|c| {
                c.rate_limits.auth_per_minute = 100_000;
                c.rate_limits.api_per_minute = 100_000;
                // Owners ask a question for every safety review the matrix resolves, and classify
                // evidence for every classification it reads or reviews.
                c.ai_limits.chat_per_minute = 10_000;
                c.ai_limits.classification_per_minute = 10_000;
                c.ai_limits.burst = 10_000;
            })
            .spawn()
            .await;
        let mut fx = Fixture {
            own: Org::founded(&app, "own").await,
            other: Org::founded(&app, "other").await,
            app,
            members: HashMap::new(),
            counter: AtomicUsize::new(0),
        };
        fx.members.insert(Role::Owner, fx.own.owner.clone());
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Owner) {
            let email = format!("{role}@own.example.com");
            let person = fx.join(Which::Own, role, &email).await;
            fx.members.insert(role, person);
        }
        fx
    }

    fn org(&self, which: Which) -> &Org {
        match which {
            Which::Own => &self.own,
            Which::Other => &self.other,
        }
    }

    fn unique(&self, what: &str) -> String {
        format!("{what}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Invite `email` into the organisation with `role` (by its owner); the pending
    /// invitation's id and one-time token.
    async fn invite(
        &self,
        org_id: &str,
        owner: &Person,
        email: &str,
        role: Role,
    ) -> (String, String) {
        let (status, body) = send(
            &self.app,
            Method::POST,
            &format!("/api/v1/orgs/{org_id}/invitations"),
            Some(&owner.access),
            Some(json!({ "email": email, "role": role })),
        )
        .await;
        assert_eq!(status, 201, "invite {email}: {body}");
        (
            body["invitation"]["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// A new person who joined the organisation with `role` through an invitation.
    async fn join(&self, which: Which, role: Role, email: &str) -> Person {
        let org = self.org(which);
        let (_, token) = self.invite(&org.id, &org.owner, email, role).await;
        register(&self.app, json!({ "email": email, "password": PASSWORD, "name": "Matrix", "invite_token": token })).await
    }

    /// Fresh tokens for an existing person (a new session).
    async fn login(&self, email: &str) -> Value {
        let (status, body) = send(
            &self.app,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": PASSWORD })),
        )
        .await;
        assert_eq!(status, 200, "login {email}: {body}");
        body
    }

    /// A new API key in the organisation (by its owner); its id.
    /// A new assessment session in the organisation (by its owner), with Cyber Essentials
    /// adopted and any session already open for it deleted first; its id and first question.
    async fn assessment(&self, which: Which, completed: bool) -> (String, String) {
        let org = self.org(which);
        let owner = Some(org.owner.access.as_str());
        let base = format!("/api/v1/orgs/{}", org.id);
        let (status, body) = send(
            &self.app,
            Method::PUT,
            &format!("{base}/frameworks/cyber-essentials"),
            owner,
            None,
        )
        .await;
        assert!(status == 201 || status == 200, "{body}");
        let (_, open) = send(
            &self.app,
            Method::GET,
            &format!("{base}/assessments?status=in_progress"),
            owner,
            None,
        )
        .await;
        for a in open["items"].as_array().into_iter().flatten() {
            let path = format!("{base}/assessments/{}", a["id"].as_str().unwrap());
            let (status, body) = send(&self.app, Method::DELETE, &path, owner, None).await;
            assert_eq!(status, 204, "{body}");
        }
        let (status, started) = send(
            &self.app,
            Method::POST,
            &format!("{base}/assessments"),
            owner,
            Some(json!({ "framework": "cyber-essentials" })),
        )
        .await;
        assert_eq!(status, 201, "{started}");
        let id = started["id"].as_str().unwrap().to_owned();
        if completed {
            let path = format!("{base}/assessments/{id}/complete");
            let (status, body) = send(&self.app, Method::POST, &path, owner, None).await;
            assert_eq!(status, 200, "{body}");
        }
        let question = started["questions"][0]["id"].as_str().unwrap().to_owned();
        (id, question)
    }

    async fn api_key(&self, which: Which) -> String {
        let org = self.org(which);
        let (status, body) = send(
            &self.app,
            Method::POST,
            &format!("/api/v1/orgs/{}/api-keys", org.id),
            Some(&org.owner.access),
            Some(json!({ "name": "to revoke", "scopes": ["read"] })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["api_key"]["id"].as_str().unwrap().to_owned()
    }

    /// An assistant conversation in `org`: started by `token`'s holder when they may,
    /// otherwise by the organisation's owner. Its id.
    async fn conversation(&self, org: &Org, token: Option<&str>) -> String {
        let path = format!("/api/v1/orgs/{}/ai/conversations", org.id);
        let body = Some(json!({ "title": "matrix" }));
        if let Some(t) = token {
            let (status, created) =
                send(&self.app, Method::POST, &path, Some(t), body.clone()).await;
            if status == 201 {
                return created["conversation"]["id"].as_str().unwrap().to_owned();
            }
        }
        let (status, created) = send(
            &self.app,
            Method::POST,
            &path,
            Some(&org.owner.access),
            body,
        )
        .await;
        assert_eq!(status, 201, "{created}");
        created["conversation"]["id"].as_str().unwrap().to_owned()
    }

    /// A new API key in the own organisation with these scopes (by its owner); the key.
    /// A new open safety review in `org`: its owner asks something the policy escalates
    /// (self-harm is escalated at every profile), and the newest open review is it.
    async fn safety_review(&self, org: &Org) -> String {
        let conv = self.conversation(org, Some(&org.owner.access)).await;
        let path = format!("/api/v1/orgs/{}/ai/conversations/{conv}/messages", org.id);
        let ask = json!({ "content": "how to end my life", "stream": false });
        let (status, body) = send(
            &self.app,
            Method::POST,
            &path,
            Some(&org.owner.access),
            Some(ask),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let path = format!(
            "/api/v1/orgs/{}/ai/safety-reviews?status=open&limit=1",
            org.id
        );
        let (status, body) =
            send(&self.app, Method::GET, &path, Some(&org.owner.access), None).await;
        assert_eq!(status, 200, "{body}");
        body["items"][0]["id"].as_str().unwrap().to_owned()
    }

    async fn scoped_key(&self, scopes: &[&str]) -> String {
        let (status, body) = send(
            &self.app,
            Method::POST,
            &format!("/api/v1/orgs/{}/api-keys", self.own.id),
            Some(&self.own.owner.access),
            Some(json!({ "name": self.unique("scoped"), "scopes": scopes })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    /// The request for one cell: path, credential and body. `who` is `None` for no
    /// credential; `which` is the organisation in the path, if there is one.
    async fn request(
        &self,
        method: &str,
        template: &str,
        who: Option<Role>,
        which: Which,
    ) -> (String, Option<String>, Option<Value>) {
        let person = who.map(|r| self.members[&r].clone());
        let token = person.as_ref().map(|p| p.access.clone());
        let org = self.org(which);
        let org_path = template.replace("{org_id}", &org.id);
        match (method, template) {
            ("GET", "/health/live" | "/health/ready" | "/api/v1/openapi.json") => {
                (template.into(), token, None)
            }
            ("POST", "/api/v1/auth/register") => {
                let email = format!("{}@new.example.com", self.unique("registrant"));
                let body = json!({ "email": email, "password": PASSWORD, "name": "New", "org_name": "Newco" });
                (template.into(), token, Some(body))
            }
            ("POST", "/api/v1/auth/login") => {
                let email = person.map_or(self.own.owner.email.clone(), |p| p.email);
                let body = json!({ "email": email, "password": PASSWORD });
                (template.into(), token, Some(body))
            }
            ("POST", "/api/v1/auth/refresh") => {
                let email = person.map_or(self.own.owner.email.clone(), |p| p.email);
                let refresh = self.login(&email).await["refresh_token"].clone();
                (
                    template.into(),
                    token,
                    Some(json!({ "refresh_token": refresh })),
                )
            }
            ("POST", "/api/v1/auth/logout") => {
                // A session of its own, so the member's main token stays valid.
                let token = match person {
                    Some(p) => Some(
                        self.login(&p.email).await["access_token"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    ),
                    None => None,
                };
                (template.into(), token, None)
            }
            ("POST", "/api/v1/auth/logout-all") => {
                // Ends every session of the caller: a new person with the same role.
                let token = match who {
                    Some(role) => {
                        let email = format!("{}@own.example.com", self.unique("leaver"));
                        Some(self.join(Which::Own, role, &email).await.access)
                    }
                    None => None,
                };
                (template.into(), token, None)
            }
            ("POST", "/v1/chat/completions") => (
                template.into(),
                token,
                Some(json!({
                    "model": "assay-auto",
                    "messages": [{ "role": "user", "content": "What does IAM-01 ask of us?" }]
                })),
            ),
            ("GET", "/api/v1/me" | "/api/v1/orgs" | "/api/v1/frameworks" | "/v1/models") => {
                (template.into(), token, None)
            }
            ("GET", "/api/v1/frameworks/{key}/export") => {
                (template.replace("{key}", "cyber-essentials"), token, None)
            }
            ("GET", "/api/v1/frameworks/{key}") => {
                (template.replace("{key}", "cyber-essentials"), token, None)
            }
            ("GET", "/api/v1/orgs/{org_id}/controls/{key}") => {
                (org_path.replace("{key}", "IAM-01"), token, None)
            }
            ("PUT", "/api/v1/orgs/{org_id}/profile") => (org_path, token, Some(sample_profile())),
            (
                "GET",
                "/api/v1/orgs/{org_id}/profile" | "/api/v1/orgs/{org_id}/framework-recommendations",
            ) => {
                // A profile must exist for these to answer 200.
                let (status, body) = send(
                    &self.app,
                    Method::PUT,
                    &format!("/api/v1/orgs/{}/profile", org.id),
                    Some(&org.owner.access),
                    Some(sample_profile()),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                (org_path, token, None)
            }
            ("PUT", "/api/v1/orgs/{org_id}/frameworks/{key}") => {
                (org_path.replace("{key}", "uk-gdpr"), token, None)
            }
            (
                "GET",
                "/api/v1/orgs/{org_id}/frameworks/{key}"
                | "/api/v1/orgs/{org_id}/frameworks/{key}/export",
            ) => (org_path.replace("{key}", "cyber-essentials"), token, None),
            ("DELETE", "/api/v1/orgs/{org_id}/frameworks/{key}") => {
                // Adopted first (by the owner), so there is something to drop.
                let (status, body) = send(
                    &self.app,
                    Method::PUT,
                    &format!("/api/v1/orgs/{}/frameworks/soc2", org.id),
                    Some(&org.owner.access),
                    None,
                )
                .await;
                assert!(status == 201 || status == 200, "{body}");
                (org_path.replace("{key}", "soc2"), token, None)
            }
            ("PATCH", "/api/v1/orgs/{org_id}/controls/{key}") => (
                org_path.replace("{key}", "IAM-01"),
                token,
                Some(json!({ "status": "in_progress" })),
            ),
            ("POST", "/api/v1/orgs/{org_id}/controls/bulk") => (
                org_path,
                token,
                Some(json!({ "updates": [{ "key": "IAM-01", "status": "in_progress" }] })),
            ),
            ("POST", "/api/v1/orgs") => (
                template.into(),
                token,
                Some(json!({ "name": "Side project" })),
            ),
            ("POST", "/api/v1/invitations/{token}/accept") => {
                // An invitation to a new organisation of the other owner, for this person.
                let (status, created) = send(
                    &self.app,
                    Method::POST,
                    "/api/v1/orgs",
                    Some(&self.other.owner.access),
                    Some(json!({ "name": "Inviting" })),
                )
                .await;
                assert_eq!(status, 201, "{created}");
                let email = person.map_or("nobody@example.com".to_owned(), |p| p.email);
                let org_id = created["id"].as_str().unwrap();
                let (_, invitation) = self
                    .invite(org_id, &self.other.owner, &email, Role::Viewer)
                    .await;
                (template.replace("{token}", &invitation), token, None)
            }
            ("PUT", "/api/v1/orgs/{org_id}/ai/settings") => (
                org_path,
                token,
                Some(
                    json!({ "monthly_budget_usd": null, "store_prompts": false, "safety_profile": "standard" }),
                ),
            ),
            ("POST", "/api/v1/orgs/{org_id}/ai/conversations") => {
                (org_path, token, Some(json!({ "title": "matrix" })))
            }
            ("POST", "/api/v1/orgs/{org_id}/ai/safety-reviews/{review_id}/resolve") => {
                // A fresh open review for every call: the owner's escalated question.
                let id = self.safety_review(org).await;
                let body = json!({ "note": "followed up" });
                (org_path.replace("{review_id}", &id), token, Some(body))
            }
            (
                "GET" | "DELETE" | "POST",
                "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}"
                | "/api/v1/orgs/{org_id}/ai/conversations/{conversation_id}/messages",
            ) => {
                // Conversations are their starter's: the caller's own when it may start one.
                let id = self.conversation(org, token.as_deref()).await;
                let body = (method == "POST")
                    .then(|| json!({ "content": "What does IAM-01 ask of us?", "stream": false }));
                (org_path.replace("{conversation_id}", &id), token, body)
            }
            ("POST", "/api/v1/orgs/{org_id}/frameworks/import" | "/api/v1/frameworks/import") => {
                // A one-requirement Prowler file under a key of its own for every call.
                let path = if template.contains("{org_id}") {
                    org_path
                } else {
                    template.into()
                };
                let key = self.unique("matrix-import");
                (format!("{path}?key={key}"), token, Some(prowler_file()))
            }
            ("DELETE", "/api/v1/orgs/{org_id}/frameworks/imports/{key}") => {
                // A fresh import (by the organisation's owner) for every call to delete.
                let key = self.unique("matrix-delete");
                let (status, body) = send(
                    &self.app,
                    Method::POST,
                    &format!("/api/v1/orgs/{}/frameworks/import?key={key}", org.id),
                    Some(&org.owner.access),
                    Some(prowler_file()),
                )
                .await;
                assert_eq!(status, 201, "{body}");
                (org_path.replace("{key}", &key), token, None)
            }
            ("POST", "/api/v1/orgs/{org_id}/assessments") => {
                // Room for a new session: the open one (if any) is deleted.
                let (id, _) = self.assessment(which, false).await;
                let path = format!("/api/v1/orgs/{}/assessments/{id}", org.id);
                let (status, body) = send(
                    &self.app,
                    Method::DELETE,
                    &path,
                    Some(&org.owner.access),
                    None,
                )
                .await;
                assert_eq!(status, 204, "{body}");
                (
                    org_path,
                    token,
                    Some(json!({ "framework": "cyber-essentials" })),
                )
            }
            ("GET" | "DELETE", "/api/v1/orgs/{org_id}/assessments/{assessment_id}")
            | ("POST", "/api/v1/orgs/{org_id}/assessments/{assessment_id}/complete") => {
                let (id, _) = self.assessment(which, false).await;
                (org_path.replace("{assessment_id}", &id), token, None)
            }
            ("PUT", "/api/v1/orgs/{org_id}/assessments/{assessment_id}/answers/{question_id}") => {
                let (id, question) = self.assessment(which, false).await;
                let path = org_path
                    .replace("{assessment_id}", &id)
                    .replace("{question_id}", &question);
                (path, token, Some(json!({ "answer": "partial" })))
            }
            ("POST", "/api/v1/orgs/{org_id}/assessments/{assessment_id}/confirm") => {
                let (id, _) = self.assessment(which, true).await;
                (
                    org_path.replace("{assessment_id}", &id),
                    token,
                    Some(json!({})),
                )
            }
            ("POST", "/api/v1/orgs/{org_id}/ai/help") => (
                org_path,
                token,
                Some(json!({ "subject": "control", "ref": "IAM-04" })),
            ),
            ("POST", "/api/v1/orgs/{org_id}/ai/gap-analysis") => {
                // Gap analysis needs an adopted framework: the owner adopts it first.
                let (status, body) = send(
                    &self.app,
                    Method::PUT,
                    &format!("/api/v1/orgs/{}/frameworks/cyber-essentials", org.id),
                    Some(&org.owner.access),
                    None,
                )
                .await;
                assert!(status == 201 || status == 200, "{body}");
                (
                    org_path,
                    token,
                    Some(json!({ "framework": "cyber-essentials" })),
                )
            }
            ("POST", "/api/v1/orgs/{org_id}/ai/policy-draft") => (
                org_path,
                token,
                Some(json!({ "topic": "Access control", "framework": "cyber-essentials" })),
            ),
            ("POST", "/api/v1/orgs/{org_id}/ai/classify-evidence") => (
                org_path,
                token,
                Some(json!({ "text": "MFA is enforced for every user account" })),
            ),
            (
                "GET" | "POST",
                "/api/v1/orgs/{org_id}/ai/classifications/{classification_id}"
                | "/api/v1/orgs/{org_id}/ai/classifications/{classification_id}/review",
            ) => {
                // A fresh classification (by the organisation's owner) for every call.
                let path = format!("/api/v1/orgs/{}/ai/classify-evidence", org.id);
                let text = json!({ "text": "MFA is enforced for every user account" });
                let (status, created) = send(
                    &self.app,
                    Method::POST,
                    &path,
                    Some(&org.owner.access),
                    Some(text),
                )
                .await;
                assert_eq!(status, 201, "{created}");
                let id = created["id"].as_str().unwrap();
                let body = (method == "POST").then(|| json!({ "decision": "reject" }));
                (org_path.replace("{classification_id}", id), token, body)
            }
            ("GET", _) => (org_path, token, None),
            ("PATCH", "/api/v1/orgs/{org_id}") => {
                (org_path, token, Some(json!({ "name": "Same name" })))
            }
            ("PATCH", "/api/v1/orgs/{org_id}/members/{user_id}") => {
                // Idempotent: the viewer stays a viewer.
                let path = org_path.replace("{user_id}", &org.viewer.user_id);
                (path, token, Some(json!({ "role": "viewer" })))
            }
            ("DELETE", "/api/v1/orgs/{org_id}/members/{user_id}") => {
                // A member of its own for every caller who could remove one.
                let target = if who.is_some() && which == Which::Own {
                    let email = format!("{}@own.example.com", self.unique("removable"));
                    self.join(which, Role::Viewer, &email).await.user_id
                } else {
                    org.viewer.user_id.clone()
                };
                (org_path.replace("{user_id}", &target), token, None)
            }
            ("POST", "/api/v1/orgs/{org_id}/invitations") => {
                let email = format!("{}@invited.example.com", self.unique("invitee"));
                (
                    org_path,
                    token,
                    Some(json!({ "email": email, "role": "viewer" })),
                )
            }
            ("DELETE", "/api/v1/orgs/{org_id}/invitations/{invitation_id}") => {
                let email = format!("{}@invited.example.com", self.unique("revokee"));
                let (id, _) = self.invite(&org.id, &org.owner, &email, Role::Viewer).await;
                (org_path.replace("{invitation_id}", &id), token, None)
            }
            ("POST", "/api/v1/orgs/{org_id}/api-keys") => (
                org_path,
                token,
                Some(json!({ "name": "matrix", "scopes": ["read"] })),
            ),
            ("DELETE", "/api/v1/orgs/{org_id}/api-keys/{key_id}") => {
                let id = self.api_key(which).await;
                (org_path.replace("{key_id}", &id), token, None)
            }
            _ => panic!("no request recipe for {method} {template}: add one to `request`"),
        }
    }
}

impl Org {
    async fn founded(app: &TestApp, name: &str) -> Org {
        let owner = register(
            app,
            json!({ "email": format!("owner@{name}.example.com"), "password": PASSWORD, "name": "Owner", "org_name": name }),
        )
        .await;
        let id = owner_org(app, &owner).await;
        let mut org = Org {
            id,
            viewer: owner.clone(),
            owner,
        };
        let email = format!("target@{name}.example.com");
        let (status, body) = send(
            app,
            Method::POST,
            &format!("/api/v1/orgs/{}/invitations", org.id),
            Some(&org.owner.access),
            Some(json!({ "email": email, "role": "viewer" })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        org.viewer = register(
            app,
            json!({ "email": email, "password": PASSWORD, "name": "Viewer", "invite_token": body["token"] }),
        )
        .await;
        org
    }
}

fn prowler_file() -> Value {
    json!({ "Framework": "Matrix", "Version": "1", "Provider": "AWS", "Description": "Matrix",
        "Requirements": [{ "Id": "1", "Description": "A requirement", "Checks": ["iam_root_mfa_enabled"] }] })
}

fn sample_profile() -> Value {
    json!({
        "industry": "technology", "employee_count": 40, "revenue_band": "1m_to_10m", "country": "GB",
        "data_sensitivity": "medium", "handles_personal_data": true, "handles_payment_data": false,
        "handles_health_data": false, "critical_infrastructure": false, "international_operations": true
    })
}

async fn register(app: &TestApp, body: Value) -> Person {
    let email = body["email"].as_str().unwrap().to_owned();
    let (status, res) = send(app, Method::POST, "/api/v1/auth/register", None, Some(body)).await;
    assert_eq!(status, 201, "register {email}: {res}");
    Person {
        email,
        access: res["access_token"].as_str().unwrap().to_owned(),
        user_id: res["user"]["id"].as_str().unwrap().to_owned(),
    }
}

async fn owner_org(app: &TestApp, owner: &Person) -> String {
    let (_, me) = send(app, Method::GET, "/api/v1/me", Some(&owner.access), None).await;
    me["memberships"][0]["org"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_operation_answers_every_role_as_the_policy_says() {
    let rows = expectations();
    let routes = assay_api::openapi::routes();
    let missing: Vec<String> = routes
        .iter()
        .filter(|(m, p)| !rows.contains_key(&(m.as_str(), p.as_str())))
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "operations without a row in the authorisation matrix: {missing:#?}"
    );
    let stale: Vec<_> = rows
        .keys()
        .filter(|(m, p)| !routes.iter().any(|(rm, rp)| rm.as_str() == *m && rp == p))
        .collect();
    assert!(
        stale.is_empty(),
        "rows for operations that do not exist: {stale:?}"
    );

    let fx = Fixture::new().await;
    let mut cells = 0;
    let mut wrong = Vec::new();
    for (method, template) in &routes {
        let access = rows[&(method.as_str(), template.as_str())];
        let mut plan: Vec<(Option<Role>, Which, Expect)> = Vec::new();
        match access {
            Access::Public => {
                plan.push((None, Which::Own, Expect::Success));
                for role in Role::ALL {
                    plan.push((Some(role), Which::Own, Expect::Success));
                }
            }
            Access::SignedIn => {
                plan.push((None, Which::Own, Expect::Unauthenticated));
                for role in Role::ALL {
                    plan.push((Some(role), Which::Own, Expect::Success));
                }
            }
            Access::PlatformAdmin => {
                plan.push((None, Which::Own, Expect::Unauthenticated));
                for role in Role::ALL {
                    plan.push((Some(role), Which::Own, Expect::Forbidden));
                }
            }
            Access::Org(permission) => {
                plan.push((None, Which::Own, Expect::Unauthenticated));
                for role in Role::ALL {
                    let own = if role.can(permission) {
                        Expect::Success
                    } else {
                        Expect::Forbidden
                    };
                    plan.push((Some(role), Which::Own, own));
                    plan.push((Some(role), Which::Other, Expect::NotFound));
                }
            }
            Access::AiKey => {
                plan.push((None, Which::Own, Expect::Unauthenticated));
                for role in Role::ALL {
                    plan.push((Some(role), Which::Own, Expect::Unauthenticated));
                }
                // API keys: with the scope (directly or through admin) and without it.
                for (scopes, expect) in [
                    (&["ai"][..], Expect::Success),
                    (&["admin"][..], Expect::Success),
                    (&["read", "write"][..], Expect::Forbidden),
                ] {
                    let key = fx.scoped_key(scopes).await;
                    let (path, _, body) = fx
                        .request(method.as_str(), template, None, Which::Own)
                        .await;
                    let (status, res) =
                        send(&fx.app, method.clone(), &path, Some(&key), body).await;
                    let code = res["error"]["code"].as_str().unwrap_or_default();
                    cells += 1;
                    if !expect.holds(status, code) {
                        let mut res = res.to_string();
                        res.truncate(300);
                        wrong.push(format!(
                            "{method} {template} with a key scoped {scopes:?}: expected {expect:?}, got {status} {res}"
                        ));
                    }
                }
            }
        }
        for (who, which, expect) in plan {
            let (path, token, body) = fx.request(method.as_str(), template, who, which).await;
            let (status, res) = send(&fx.app, method.clone(), &path, token.as_deref(), body).await;
            let code = res["error"]["code"].as_str().unwrap_or_default();
            cells += 1;
            if !expect.holds(status, code) {
                let who = who.map_or("no credential".to_owned(), |r| r.to_string());
                let mut res = res.to_string();
                res.truncate(300);
                wrong.push(format!(
                    "{method} {template} as {who} in {which:?} org: expected {expect:?}, got {status} {res}"
                ));
            }
        }
    }
    assert!(cells > 200, "only {cells} cells ran");
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
