//! Access tokens: short-lived JWTs signed with a rotating keyring.
//!
//! Every token names its key in the `kid` header. Verification finds the key by `kid`
//! (an unknown `kid` is rejected) and pins the algorithm to the one configured for that
//! key: the `alg` header is only compared against it, never used to choose how to verify.
//! That closes `alg: none` and HS/RS confusion. Then exp/nbf (small leeway), issuer,
//! audience and `typ = "access"` are checked. Revocation, user state and membership are
//! the extractor's next steps; the role is never in the token.

use crate::error::{KeyError, TokenError};
use assay_core::{OrgId, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// The `typ` claim of an access token.
pub const ACCESS_TYP: &str = "access";

/// Longer presented tokens are rejected before any parsing (ours are a few hundred bytes).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    pub iss: String,
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique id (UUID v7, so it also carries the issue time to the millisecond).
    pub jti: Uuid,
    /// Token type: always [`ACCESS_TYP`] for a token this module accepts.
    pub typ: String,
    /// The organisation the session was opened for, if any. A hint for the client only:
    /// the extractor checks membership of the org named in the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgId>,
    /// The session (refresh-token family) this token was minted from, so revoking the
    /// session revokes its access tokens too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

impl AccessClaims {
    /// When the token was issued, to the millisecond when the `jti` is a UUID v7 that
    /// agrees with `iat` (ours always are), else to the second. Revocation cut-offs
    /// ("every token issued before logout-all") compare against this.
    pub fn issued_at(&self) -> SystemTime {
        let from_iat = UNIX_EPOCH + Duration::from_secs(u64::try_from(self.iat).unwrap_or(0));
        let from_jti = self.jti.get_timestamp().map(|ts| {
            let (secs, nanos) = ts.to_unix();
            UNIX_EPOCH + Duration::new(secs, nanos)
        });
        match from_jti {
            Some(t)
                if t.duration_since(from_iat)
                    .is_ok_and(|d| d < Duration::from_secs(1)) =>
            {
                t
            }
            _ => from_iat,
        }
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.exp).unwrap_or(0))
    }
}

/// One signing or verification key, known by its `kid`.
pub struct JwtKey {
    kid: String,
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("can_sign", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtKey {
    /// Fewest bytes an HS256 secret may have (the hash output size).
    pub const MIN_HMAC_BYTES: usize = 32;

    /// An HS256 key (the default): signs and verifies with the same secret.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = valid_kid(kid.into())?;
        if secret.len() < Self::MIN_HMAC_BYTES {
            return Err(KeyError::HmacKeyTooShort {
                kid,
                len: secret.len(),
                min: Self::MIN_HMAC_BYTES,
            });
        }
        Ok(Self {
            kid,
            algorithm: Algorithm::HS256,
            encoding: Some(EncodingKey::from_secret(secret)),
            decoding: DecodingKey::from_secret(secret),
        })
    }

    /// An RS256 key pair from PEM (PKCS#1 or PKCS#8 private key, SPKI public key).
    pub fn rs256(
        kid: impl Into<String>,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, KeyError> {
        let mut key = Self::rs256_verify_only(kid, public_pem)?;
        let encoding =
            EncodingKey::from_rsa_pem(private_pem).map_err(|e| KeyError::InvalidKey {
                kid: key.kid.clone(),
                reason: e.to_string(),
            })?;
        key.encoding = Some(encoding);
        Ok(key)
    }

    /// An RS256 public key that only verifies (a previous key, or one held elsewhere).
    pub fn rs256_verify_only(kid: impl Into<String>, public_pem: &[u8]) -> Result<Self, KeyError> {
        let kid = valid_kid(kid.into())?;
        let decoding = DecodingKey::from_rsa_pem(public_pem).map_err(|e| KeyError::InvalidKey {
            kid: kid.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            kid,
            algorithm: Algorithm::RS256,
            encoding: None,
            decoding,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn valid_kid(kid: String) -> Result<String, KeyError> {
    let ok = (1..=64).contains(&kid.len())
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(kid)
    } else {
        Err(KeyError::InvalidKid(kid))
    }
}

/// The JOSE name of an algorithm ("HS256"...), as it appears in a token header.
fn alg_name(alg: Algorithm) -> Option<String> {
    match serde_json::to_value(alg) {
        Ok(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}

/// The current signing key and the previous keys still accepted for verification.
/// Rotation: add a new current key and move the old one to `previous` for at least one
/// access-token lifetime; then drop it, and its tokens are rejected (`UnknownKey`).
#[derive(Debug)]
pub struct Keyring {
    current: JwtKey,
    previous: Vec<JwtKey>,
}

impl Keyring {
    pub fn new(current: JwtKey, previous: Vec<JwtKey>) -> Result<Self, KeyError> {
        if current.encoding.is_none() {
            return Err(KeyError::CannotSign(current.kid));
        }
        let mut kids = vec![current.kid.as_str()];
        for key in &previous {
            if kids.contains(&key.kid.as_str()) {
                return Err(KeyError::DuplicateKid(key.kid.clone()));
            }
            kids.push(&key.kid);
        }
        Ok(Self { current, previous })
    }

    /// A keyring of one key.
    pub fn single(current: JwtKey) -> Result<Self, KeyError> {
        Self::new(current, Vec::new())
    }

    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    fn find(&self, kid: &str) -> Option<&JwtKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
    }
}

/// Issuer, audience and lifetimes.
#[derive(Clone, Debug)]
pub struct AccessTokenConfig {
    pub issuer: String,
    pub audience: String,
    /// Lifetime of a new token. Default 15 minutes.
    pub ttl: Duration,
    /// Clock skew tolerated on exp and nbf. Default 30 seconds.
    pub leeway: Duration,
}

impl AccessTokenConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ttl: Duration::from_secs(15 * 60),
            leeway: Duration::from_secs(30),
        }
    }
}

/// A freshly issued access token.
#[derive(Debug)]
pub struct IssuedAccessToken {
    /// The JWT to hand to the client (`access_token`).
    pub token: SecretString,
    pub claims: AccessClaims,
    /// Seconds until expiry (`expires_in`).
    pub expires_in: Duration,
}

/// Issues and verifies access tokens. Share it behind an `Arc`; the keyring can be
/// replaced at run time with [`AccessTokens::set_keyring`].
pub struct AccessTokens {
    cfg: AccessTokenConfig,
    keyring: RwLock<Arc<Keyring>>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("cfg", &self.cfg)
            .field("keyring", &self.keyring())
            .finish()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl AccessTokens {
    pub fn new(cfg: AccessTokenConfig, keyring: Keyring) -> Self {
        // jsonwebtoken picks its crypto backend from its features; if feature unification
        // ever enables both, it cannot choose and would panic. Installing ours explicitly
        // avoids that; an error only means a provider is already installed.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        Self {
            cfg,
            keyring: RwLock::new(Arc::new(keyring)),
        }
    }

    pub fn config(&self) -> &AccessTokenConfig {
        &self.cfg
    }

    /// Replaces the keyring (key rotation) without a restart.
    pub fn set_keyring(&self, keyring: Keyring) {
        *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keyring);
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A new access token for `user`, optionally for an org and a session family.
    pub fn issue(
        &self,
        user: UserId,
        org: Option<OrgId>,
        session: Option<Uuid>,
    ) -> Result<IssuedAccessToken, KeyError> {
        let now = now_secs();
        let ttl = i64::try_from(self.cfg.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            sub: user,
            iss: self.cfg.issuer.clone(),
            aud: self.cfg.audience.clone(),
            exp: now.saturating_add(ttl),
            nbf: now,
            iat: now,
            jti: Uuid::now_v7(),
            typ: ACCESS_TYP.to_owned(),
            org,
            sid: session,
        };
        let token = self.sign(&claims)?;
        Ok(IssuedAccessToken {
            token: SecretString::from(token),
            claims,
            expires_in: self.cfg.ttl,
        })
    }

    /// Signs arbitrary claims with the current key. Services use [`AccessTokens::issue`];
    /// this is for tests and tools that need unusual tokens (expired, other `typ`...).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let keyring = self.keyring();
        let key = &keyring.current;
        let encoding = key
            .encoding
            .as_ref()
            .ok_or_else(|| KeyError::CannotSign(key.kid.clone()))?;
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, encoding).map_err(|e| KeyError::InvalidKey {
            kid: key.kid.clone(),
            reason: e.to_string(),
        })
    }

    /// Verifies a presented token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: RawHeader = URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;

        let keyring = self.keyring();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keyring.find(kid))
            .ok_or(TokenError::UnknownKey)?;
        if alg_name(key.algorithm).as_deref() != Some(header.alg.as_str()) {
            return Err(TokenError::WrongAlgorithm);
        }

        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.cfg.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.cfg.issuer]);
        validation.set_audience(&[&self.cfg.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);

        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    TokenError::WrongAlgorithm
                }
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                _ => TokenError::Malformed,
            })?;
        if data.claims.typ != ACCESS_TYP {
            return Err(TokenError::WrongType);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const SECRET_1: &[u8] = b"0123456789abcdef0123456789abcdef-key-one";
    const SECRET_2: &[u8] = b"fedcba9876543210fedcba9876543210-key-two";
    const RSA_PRIVATE: &[u8] = include_bytes!("../testdata/rsa_test_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("../testdata/rsa_test_public.pem");

    fn cfg() -> AccessTokenConfig {
        AccessTokenConfig::new("https://assay.test", "assay-api")
    }

    fn hs(kid: &str, secret: &[u8]) -> JwtKey {
        JwtKey::hs256(kid, secret).unwrap()
    }

    fn tokens() -> AccessTokens {
        AccessTokens::new(cfg(), Keyring::single(hs("k1", SECRET_1)).unwrap())
    }

    fn claims(t: &AccessTokens) -> AccessClaims {
        t.issue(UserId::new(), Some(OrgId::new()), Some(Uuid::now_v7()))
            .unwrap()
            .claims
    }

    fn b64(json: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    /// A token with any header and claims, signed by `encoding` under `alg`.
    fn forge(
        header: &serde_json::Value,
        claims: &AccessClaims,
        sign: impl Fn(&[u8]) -> Vec<u8>,
    ) -> String {
        let signing_input = format!(
            "{}.{}",
            b64(header),
            b64(&serde_json::to_value(claims).unwrap())
        );
        let sig = URL_SAFE_NO_PAD.encode(sign(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        aws_lc_rs::hmac::sign(&k, msg).as_ref().to_vec()
    }

    #[test]
    fn issued_tokens_verify_with_all_claims() {
        let t = tokens();
        let user = UserId::new();
        let org = OrgId::new();
        let sid = Uuid::now_v7();
        let issued = t.issue(user, Some(org), Some(sid)).unwrap();
        assert_eq!(issued.expires_in, Duration::from_secs(900));
        let header = jsonwebtoken::decode_header(issued.token.expose_secret()).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.alg, Algorithm::HS256);

        let c = t.verify(issued.token.expose_secret()).unwrap();
        assert_eq!(c, issued.claims);
        assert_eq!(c.sub, user);
        assert_eq!(c.org, Some(org));
        assert_eq!(c.sid, Some(sid));
        assert_eq!(c.typ, "access");
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str()),
            ("https://assay.test", "assay-api")
        );
        assert_eq!(c.exp - c.iat, 900);
        assert_eq!(c.nbf, c.iat);
        let issued_at = c.issued_at();
        let iat = UNIX_EPOCH + Duration::from_secs(c.iat as u64);
        assert!(issued_at >= iat && issued_at < iat + Duration::from_secs(1));
        assert_ne!(claims(&t).jti, claims(&t).jti);
    }

    #[test]
    fn alg_none_is_rejected() {
        let t = tokens();
        let c = claims(&t);
        for alg in ["none", "None", "NONE"] {
            let token = forge(
                &serde_json::json!({"alg": alg, "kid": "k1", "typ": "JWT"}),
                &c,
                |_| vec![],
            );
            assert_eq!(t.verify(&token), Err(TokenError::WrongAlgorithm), "{alg}");
            let unsigned = token.trim_end_matches(|c| c != '.').to_owned();
            assert_eq!(t.verify(&unsigned), Err(TokenError::WrongAlgorithm));
        }
    }

    #[test]
    fn rs256_token_is_rejected_by_an_hs256_key() {
        let t = tokens();
        let c = claims(&t);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let rs = jsonwebtoken::encode(
            &header,
            &c,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        )
        .unwrap();
        assert_eq!(t.verify(&rs), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_rejected() {
        // The classic confusion: the attacker knows the RS256 public key and uses it as
        // an HMAC secret, hoping the server verifies by the header's algorithm.
        let rs = AccessTokens::new(
            cfg(),
            Keyring::single(JwtKey::rs256("rsa-1", RSA_PRIVATE, RSA_PUBLIC).unwrap()).unwrap(),
        );
        let c = claims(&rs);
        let legit = rs.issue(c.sub, None, None).unwrap();
        assert!(
            rs.verify(legit.token.expose_secret()).is_ok(),
            "RS256 works when configured"
        );
        let forged = forge(
            &serde_json::json!({"alg": "HS256", "kid": "rsa-1"}),
            &c,
            |m| hmac_sha256(RSA_PUBLIC, m),
        );
        assert_eq!(rs.verify(&forged), Err(TokenError::WrongAlgorithm));

        // And against an HS256 key, a token keyed with the public key is just a bad signature.
        let hs = tokens();
        let forged = forge(&serde_json::json!({"alg": "HS256", "kid": "k1"}), &c, |m| {
            hmac_sha256(RSA_PUBLIC, m)
        });
        assert_eq!(hs.verify(&forged), Err(TokenError::BadSignature));
        // Whereas the same forgery with the right secret verifies: the forge is sound.
        let good = forge(&serde_json::json!({"alg": "HS256", "kid": "k1"}), &c, |m| {
            hmac_sha256(SECRET_1, m)
        });
        assert!(hs.verify(&good).is_ok());
    }

    #[test]
    fn wrong_key_and_tampered_payload_are_bad_signatures() {
        let t = tokens();
        let other = AccessTokens::new(cfg(), Keyring::single(hs("k1", SECRET_2)).unwrap());
        let token = other.issue(UserId::new(), None, None).unwrap();
        assert_eq!(
            t.verify(token.token.expose_secret()),
            Err(TokenError::BadSignature)
        );

        let mine = t.issue(UserId::new(), None, None).unwrap();
        let text = mine.token.expose_secret();
        let parts: Vec<&str> = text.split('.').collect();
        let mut c = mine.claims.clone();
        c.sub = UserId::new();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_value(&c).unwrap()),
            parts[2]
        );
        assert_eq!(t.verify(&tampered), Err(TokenError::BadSignature));
        // Flipping one signature character breaks it too.
        let mut sig: Vec<char> = parts[2].chars().collect();
        sig[0] = if sig[0] == 'A' { 'B' } else { 'A' };
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            sig.into_iter().collect::<String>()
        );
        assert_eq!(t.verify(&flipped), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_and_not_before_with_leeway() {
        let t = tokens();
        let now = now_secs();
        let mut c = claims(&t);
        c.exp = now - 120;
        assert_eq!(t.verify(&t.sign(&c).unwrap()), Err(TokenError::Expired));
        c.exp = now - 5; // within the 30 s leeway
        assert!(t.verify(&t.sign(&c).unwrap()).is_ok());

        let mut c = claims(&t);
        c.nbf = now + 120;
        assert_eq!(t.verify(&t.sign(&c).unwrap()), Err(TokenError::NotYetValid));
        c.nbf = now + 5;
        assert!(t.verify(&t.sign(&c).unwrap()).is_ok());
    }

    #[test]
    fn wrong_issuer_audience_and_type() {
        let t = tokens();
        let mut c = claims(&t);
        c.iss = "https://evil.test".into();
        assert_eq!(t.verify(&t.sign(&c).unwrap()), Err(TokenError::WrongIssuer));

        let mut c = claims(&t);
        c.aud = "another-api".into();
        assert_eq!(
            t.verify(&t.sign(&c).unwrap()),
            Err(TokenError::WrongAudience)
        );

        let mut c = claims(&t);
        c.typ = "refresh".into();
        assert_eq!(t.verify(&t.sign(&c).unwrap()), Err(TokenError::WrongType));
    }

    #[test]
    fn missing_claims_and_junk_are_malformed() {
        let t = tokens();
        for junk in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.e30"] {
            let err = t.verify(junk).unwrap_err();
            assert!(
                matches!(err, TokenError::Malformed | TokenError::UnknownKey),
                "{junk}: {err:?}"
            );
        }
        // An opaque refresh token presented as a bearer token.
        let (refresh, _) = crate::random::new_opaque_token();
        assert_eq!(
            t.verify(refresh.expose_secret()),
            Err(TokenError::Malformed)
        );
        // Signed correctly but without a jti.
        let c = claims(&t);
        let mut value = serde_json::to_value(&c).unwrap();
        value.as_object_mut().unwrap().remove("jti");
        let header = serde_json::json!({"alg": "HS256", "kid": "k1"});
        let input = format!("{}.{}", b64(&header), b64(&value));
        let token = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET_1, input.as_bytes()))
        );
        assert_eq!(t.verify(&token), Err(TokenError::Malformed));
    }

    #[test]
    fn oversized_tokens_are_rejected_unparsed() {
        let t = tokens();
        let c = claims(&t);
        let mut value = serde_json::to_value(&c).unwrap();
        value["padding"] = serde_json::json!("x".repeat(MAX_TOKEN_BYTES));
        let header = serde_json::json!({"alg": "HS256", "kid": "k1"});
        let input = format!("{}.{}", b64(&header), b64(&value));
        let token = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET_1, input.as_bytes()))
        );
        assert_eq!(t.verify(&token), Err(TokenError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn verifying_arbitrary_text_never_panics_or_passes(text in "\\PC{0,300}") {
            proptest::prop_assert!(tokens().verify(&text).is_err());
        }
    }

    #[test]
    fn unknown_or_missing_kid_is_rejected() {
        let t = tokens();
        let c = claims(&t);
        let stranger = AccessTokens::new(cfg(), Keyring::single(hs("k9", SECRET_1)).unwrap());
        assert_eq!(
            t.verify(&stranger.sign(&c).unwrap()),
            Err(TokenError::UnknownKey)
        );
        let no_kid = forge(&serde_json::json!({"alg": "HS256"}), &c, |m| {
            hmac_sha256(SECRET_1, m)
        });
        assert_eq!(t.verify(&no_kid), Err(TokenError::UnknownKey));
    }

    #[test]
    fn key_rotation_keeps_old_tokens_while_listed() {
        let t = tokens();
        let old = t.issue(UserId::new(), None, None).unwrap();

        t.set_keyring(Keyring::new(hs("k2", SECRET_2), vec![hs("k1", SECRET_1)]).unwrap());
        assert!(
            t.verify(old.token.expose_secret()).is_ok(),
            "previous key still verifies"
        );
        let new = t.issue(UserId::new(), None, None).unwrap();
        let header = jsonwebtoken::decode_header(new.token.expose_secret()).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            Some("k2"),
            "new tokens use the new key"
        );

        t.set_keyring(Keyring::single(hs("k2", SECRET_2)).unwrap());
        assert_eq!(
            t.verify(old.token.expose_secret()),
            Err(TokenError::UnknownKey)
        );
        assert!(t.verify(new.token.expose_secret()).is_ok());
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert!(matches!(
            JwtKey::hs256("k", b"short"),
            Err(KeyError::HmacKeyTooShort { .. })
        ));
        assert!(matches!(
            JwtKey::hs256("bad kid", SECRET_1),
            Err(KeyError::InvalidKid(_))
        ));
        assert!(matches!(
            JwtKey::rs256_verify_only("r", b"not pem"),
            Err(KeyError::InvalidKey { .. })
        ));
        assert!(matches!(
            Keyring::new(hs("k1", SECRET_1), vec![hs("k1", SECRET_2)]),
            Err(KeyError::DuplicateKid(_))
        ));
        assert!(matches!(
            Keyring::single(JwtKey::rs256_verify_only("r", RSA_PUBLIC).unwrap()),
            Err(KeyError::CannotSign(_))
        ));
        let debug = format!("{:?}", tokens());
        assert!(debug.contains("k1"));
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        let issued = tokens().issue(UserId::new(), None, None).unwrap();
        assert!(!format!("{issued:?}").contains(issued.token.expose_secret()));
    }
}
