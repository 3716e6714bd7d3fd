//! The two doors through which a person approves or denies a parked call, both served by the
//! server under `/approvals/`:
//!
//! - **A JSON API** for scripts and chat bots: `GET /approvals/{id}`, `POST
//!   /approvals/{id}/approve` and `POST /approvals/{id}/deny`, each with the approver's own
//!   bearer token, which must hold the tool's approver grant.
//! - **An HTML page** at `GET /approvals/{id}`, where the approver signs in at the deployment's
//!   authorization server (authorization code with PKCE; the server is the OAuth client,
//!   `[http.approvals]`). The URL carries only the approval's id, which grants nothing by
//!   itself; the page checks who opened it: only a signed-in person holding the grant sees the
//!   arguments and may decide.
//!
//! Who may decide is [`Approvals`]' to say, for both doors and the command line alike; the
//! doors establish who is asking. A revoked approver is refused at every request, through
//! either door, and a signed-in session ends with the token it was opened with.
//!
//! The sign-in state and the approver's session live in cookies sealed with the server's
//! request-state keys, each under a key derived for its purpose and bound to this server's
//! resource, so any replica sharing the keys serves any step and nothing sealed for one use
//! opens as another. The sign-in cookie is single-use: its nonce is spent in the approval
//! store, which replicas share.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::bearer::BearerValidator;
use super::jwks::issuer_metadata;
use crate::approval::{ApprovalError, Approvals, Approver, Door, PendingCall, Standing, is_id};
use crate::audit::ArgumentDigest;
use crate::config::ApprovalPageSection;
use crate::principal::Principal;
use crate::revocation::Revocations;
use crate::sealed_state::{Binding, Purpose, StateSealer};
use crate::visible::{escape_invisible, escape_invisible_keeping_lines, same_person};

/// How long a signed-in approver's session lasts at most; never past the token it was opened
/// with.
const SESSION: Duration = Duration::from_secs(600);

/// How long a sign-in may take from the redirect to the callback.
const LOGIN: Duration = Duration::from_secs(600);

/// How long the issuer's endpoints are remembered, and how long a failure to read them is.
const METADATA_TTL: Duration = Duration::from_secs(600);
const METADATA_RETRY: Duration = Duration::from_secs(10);

/// The largest form or JSON body accepted.
const MAX_BODY: usize = 16 * 1024;

const SESSION_COOKIE: &str = "mcp_lp_approver";
const LOGIN_COOKIE: &str = "mcp_lp_login";

/// What the doors need.
pub(crate) struct Doors {
    pub(crate) approvals: Arc<Approvals>,
    pub(crate) revocations: Revocations,
    pub(crate) validator: Option<Arc<BearerValidator>>,
    pub(crate) sealer: StateSealer,
    /// The resource URI tokens name, asked for again at sign-in; what cookies are bound to.
    pub(crate) resource: String,
    /// The resource's origin, which forms must come from.
    pub(crate) origin: String,
    /// `Host` values served, as for the MCP endpoint (`[http] allowed_hosts`): a DNS-rebinding
    /// defence for a page that works with cookies.
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) login: Option<Login>,
}

/// The issuer's authorization and token endpoints, or why they cannot be read.
type Endpoints = Result<(String, String), String>;

/// The approval page's OAuth client.
pub(crate) struct Login {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<secrecy::SecretString>,
    pub(crate) scope: Option<String>,
    pub(crate) issuer: String,
    pub(crate) http: reqwest::Client,
    /// The issuer's endpoints as last read, or the last failure, and when.
    endpoints: Mutex<Option<(Instant, Endpoints)>>,
}

impl Login {
    pub(crate) fn new(
        section: &ApprovalPageSection,
        client_secret: Option<secrecy::SecretString>,
        issuer: &str,
    ) -> Self {
        Self {
            client_id: section.client_id.clone(),
            client_secret,
            scope: section.scope.clone(),
            issuer: issuer.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            endpoints: Mutex::new(None),
        }
    }

    /// The issuer's authorization and token endpoints, from its metadata: remembered for
    /// [`METADATA_TTL`], and a failure for [`METADATA_RETRY`], so that requests to the page do
    /// not make the server fetch the issuer's metadata each time.
    async fn endpoints(&self) -> Endpoints {
        if let Ok(remembered) = self.endpoints.lock()
            && let Some((at, endpoints)) = remembered.as_ref()
        {
            let fresh = match endpoints {
                Ok(_) => at.elapsed() < METADATA_TTL,
                Err(_) => at.elapsed() < METADATA_RETRY,
            };
            if fresh {
                return endpoints.clone();
            }
        }
        let fetched = self.fetch_endpoints().await;
        if let Ok(mut remembered) = self.endpoints.lock() {
            *remembered = Some((Instant::now(), fetched.clone()));
        }
        fetched
    }

    async fn fetch_endpoints(&self) -> Endpoints {
        let (_, metadata) = issuer_metadata(&self.http, &self.issuer)
            .await
            .map_err(|e| e.to_string())?;
        let endpoint = |name: &str| {
            let uri = metadata
                .get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("the issuer's metadata has no `{name}`"))?;
            crate::url_policy::https_or_loopback(uri)
                .map(|_| uri.to_owned())
                .map_err(|e| format!("`{name}` {e}"))
        };
        Ok((
            endpoint("authorization_endpoint")?,
            endpoint("token_endpoint")?,
        ))
    }
}

/// Every request under `/approvals/`.
pub(crate) async fn door(
    State(doors): State<Arc<Doors>>,
    Path(rest): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if !host_allowed(&parts.headers, &doors.allowed_hosts) {
        return page_error(StatusCode::FORBIDDEN, "this host is not served");
    }
    let mut segments = rest.split('/');
    let (first, second) = (segments.next().unwrap_or(""), segments.next());
    if segments.next().is_some() {
        return page_error(StatusCode::NOT_FOUND, "no such page");
    }
    if first == "callback" && second.is_none() && parts.method == Method::GET {
        return doors.callback(parts.uri.query(), &parts.headers).await;
    }
    if !is_id(first) {
        return page_error(StatusCode::NOT_FOUND, "no such approval");
    }
    let verdict = match (second, &parts.method) {
        (None, &Method::GET) => None,
        (Some("approve"), &Method::POST) => Some(true),
        (Some("deny"), &Method::POST) => Some(false),
        _ => return page_error(StatusCode::NOT_FOUND, "no such page"),
    };
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return page_error(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large"),
    };
    match bearer_of(&parts.headers) {
        Some(token) => doors.api(first, verdict, token, &body).await,
        None => doors.page(first, verdict, &parts.headers, &body).await,
    }
}

impl Doors {
    /// The JSON API: the approver is the bearer token's principal.
    async fn api(&self, id: &str, verdict: Option<bool>, token: &str, body: &[u8]) -> Response {
        let Some(validator) = &self.validator else {
            return api_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server validates no bearer tokens".into(),
            );
        };
        let approver = match validator.validate(token).await {
            Ok(principal) => principal,
            Err(e) => {
                crate::audit::record(
                    &crate::audit::Record::new("auth_refused")
                        .warn()
                        .str("door", "approvals")
                        .str("reason", &e.to_string()),
                );
                return api_error(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string());
            }
        };
        if let Some(refused) = self.revoked(approver.id()) {
            return approval_error(&refused);
        }
        let call = match self.approvals.get(id).await {
            Ok(call) => call,
            Err(e) => return approval_error(&e),
        };
        if !approver.holds(&call.grant, SystemTime::now()) {
            let error = ApprovalError::LacksGrant(call.grant.clone());
            return api_error(
                StatusCode::FORBIDDEN,
                error.code(),
                format!("{} {error}", escape_invisible(approver.id())),
            );
        }
        let Some(approve) = verdict else {
            return (
                StatusCode::OK,
                axum::Json(call_json(
                    &call,
                    &self.approvals.standing(&call, jiff::Timestamp::now()),
                )),
            )
                .into_response();
        };
        let reason = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let approver = Approver::new((*approver).clone(), Door::Api, reason);
        match self.approvals.decide(id, &approver, approve).await {
            Ok(call) => (
                StatusCode::OK,
                axum::Json(call_json(
                    &call,
                    &self.approvals.standing(&call, jiff::Timestamp::now()),
                )),
            )
                .into_response(),
            Err(e) => approval_error(&e),
        }
    }

    /// The revocation that refuses `principal` as an approver, if any.
    fn revoked(&self, principal: &str) -> Option<ApprovalError> {
        let list = self.revocations.current();
        list.entries()
            .iter()
            .find(|r| match &r.target {
                crate::revocation::Target::All => true,
                crate::revocation::Target::Principal(p) => same_person(p, principal),
                _ => false,
            })
            .map(|r| ApprovalError::Revoked(format!("{}: {} (by {})", r.target, r.reason, r.by)))
    }

    /// The HTML page: the approver is whoever signed in.
    async fn page(
        &self,
        id: &str,
        verdict: Option<bool>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        let Some(approver) = self.session(headers) else {
            if verdict.is_some() {
                return page_error(
                    StatusCode::UNAUTHORIZED,
                    "sign in first: open the approval page again",
                );
            }
            return self.sign_in(id).await;
        };
        if let Some(refused) = self.revoked(approver.id()) {
            let mut response = page_error(StatusCode::FORBIDDEN, &refused.to_string());
            // The session of a revoked approver ends here.
            set_cookie(
                &mut response,
                SESSION_COOKIE,
                "",
                "Strict",
                0,
                self.secure(),
            );
            return response;
        }
        let call = match self.approvals.get(id).await {
            Ok(call) => call,
            Err(e) => return page_error(StatusCode::NOT_FOUND, &e.to_string()),
        };
        let mut notice = String::new();
        if let Some(approve) = verdict {
            // A form is answered only from this origin and with this session's token for this
            // approval: another site cannot make the approver's browser decide.
            let same_origin = headers
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .is_some_and(|o| o == self.origin);
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            let token = form
                .iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.as_str());
            if !same_origin
                || token.is_none_or(|t| self.cookies().open_csrf(&approver, id, t).is_err())
            {
                return page_error(
                    StatusCode::FORBIDDEN,
                    "the form did not come from this page",
                );
            }
            let reason = form
                .iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let deciding = Approver::new(approver.clone(), Door::Page, reason);
            notice = match self.approvals.decide(id, &deciding, approve).await {
                Ok(_) if approve => "You approved this call.".to_owned(),
                Ok(_) => "You denied this call.".to_owned(),
                Err(e) => format!("Not recorded: {e}."),
            };
        }
        let call = self.approvals.get(id).await.unwrap_or(call);
        self.render(&approver, &call, &notice)
    }

    /// Why `approver` may not decide `call`, for the page; the decision itself is
    /// [`Approvals::decide`]'s.
    fn why_not(&self, approver: &Principal, call: &PendingCall) -> Option<String> {
        if !approver.holds(&call.grant, SystemTime::now()) {
            return Some(format!(
                "You are signed in as {}, who does not hold `{}`: this call is not yours to see or decide.",
                approver.id(),
                call.grant
            ));
        }
        if same_person(approver.id(), &call.principal) && !call.self_approve {
            return Some("You asked for this call: another person approves it.".to_owned());
        }
        None
    }

    fn render(&self, approver: &Principal, call: &PendingCall, notice: &str) -> Response {
        let standing = self.approvals.standing(call, jiff::Timestamp::now());
        let holds = approver.holds(&call.grant, SystemTime::now());
        // Only a holder of the approver grant reads what the call would do.
        let arguments = if holds {
            let pretty = serde_json::to_string_pretty(&call.arguments).unwrap_or_default();
            format!(
                "<h2>Arguments</h2><pre id=\"arguments\">{}</pre>",
                escape(&escape_invisible_keeping_lines(&pretty))
            )
        } else {
            String::new()
        };
        let approvers: Vec<&str> = call.approvals.iter().map(|v| v.by.as_str()).collect();
        let mut html = String::new();
        let _ = write!(
            html,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Approve {tool}?</title></head><body>\
             <h1>Approve a call of <code id=\"tool\">{tool}</code>?</h1>\
             <p>Requested by <strong id=\"requester\">{requester}</strong> at {at}. Expires at {expires}.</p>\
             <p id=\"why\">Why it needs approval: {why}</p>\
             {arguments}\
             <p>Status: <strong id=\"status\">{standing}</strong>. Needs {min} approval(s) by holders of <code>{grant}</code>; approved by: {approvers}.</p>\
             <p>Signed in as <strong id=\"approver\">{me}</strong>.</p>",
            tool = shown(&call.tool),
            requester = shown(&call.principal),
            at = shown(&call.requested_at),
            expires = shown(&call.expires_at),
            why = escape(&escape_invisible_keeping_lines(&call.why)),
            standing = shown(&standing.to_string()),
            min = call.min,
            grant = shown(&call.grant),
            approvers = if approvers.is_empty() {
                "nobody yet".to_owned()
            } else {
                shown(&approvers.join(", "))
            },
            me = shown(approver.id()),
        );
        if !notice.is_empty() {
            let _ = write!(
                html,
                "<p id=\"notice\" role=\"status\">{}</p>",
                shown(notice)
            );
        }
        match (self.why_not(approver, call), &standing) {
            (None, Standing::Pending { .. })
                if !call
                    .approvals
                    .iter()
                    .any(|v| same_person(&v.by, approver.id())) =>
            {
                let csrf = self.cookies().seal_csrf(approver, &call.id);
                let _ = write!(
                    html,
                    "<form method=\"post\" action=\"/approvals/{id}/approve\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button id=\"approve\" type=\"submit\">Approve</button></form>\
                     <form method=\"post\" action=\"/approvals/{id}/deny\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><label>Reason <input name=\"reason\"></label><button id=\"deny\" type=\"submit\">Deny</button></form>",
                    id = call.id,
                    csrf = escape(&csrf),
                );
            }
            (Some(why), _) if notice.is_empty() => {
                let _ = write!(html, "<p id=\"refusal\">{}</p>", shown(&why));
            }
            _ => {}
        }
        html.push_str("</body></html>");
        let mut response = (StatusCode::OK, html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
        // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with the
        // page's own forms, which the origin check must refuse.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        response
    }

    fn secure(&self) -> bool {
        self.origin.starts_with("https:")
    }

    /// Send the browser to the issuer to sign in, remembering (sealed, in a cookie) the PKCE
    /// verifier, the state and the approval. An unknown approval is refused before the issuer
    /// is asked anything.
    async fn sign_in(&self, id: &str) -> Response {
        let Some(login) = &self.login else {
            return page_error(
                StatusCode::UNAUTHORIZED,
                "sign-in to the approval page is not configured ([http.approvals]); approve with the JSON API and your bearer token",
            );
        };
        let grant = match self.approvals.get(id).await {
            Ok(call) => call.grant,
            Err(e) => return page_error(StatusCode::NOT_FOUND, &e.to_string()),
        };
        let (authorize, _) = match login.endpoints().await {
            Ok(endpoints) => endpoints,
            Err(e) => {
                return page_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the authorization server cannot be used: {e}"),
                );
            }
        };
        let (Ok(verifier), Ok(state)) = (random_token(), random_token()) else {
            return page_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the operating system's random source failed; no sign-in is started without it",
            );
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut scope = format!("openid {grant}");
        if let Some(extra) = &login.scope {
            scope.push(' ');
            scope.push_str(extra);
        }
        let redirect = format!("{}/approvals/callback", self.origin);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &login.client_id)
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", &scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &self.resource)
            .finish();
        let separator = if authorize.contains('?') { '&' } else { '?' };
        let remembered = json!({ "state": state, "verifier": verifier, "id": id }).to_string();
        let empty = ArgumentDigest::of(None);
        let cookies = self.cookies();
        let cookie = cookies.sealer.seal(
            &cookies.binding(Purpose::LoginCookie, "", "login", &empty),
            &remembered,
        );
        let mut response = redirect_to(&format!("{authorize}{separator}{query}"));
        set_cookie(
            &mut response,
            LOGIN_COOKIE,
            &cookie,
            "Lax",
            LOGIN.as_secs(),
            self.secure(),
        );
        response
    }

    /// The issuer sends the browser back here with a code: trade it (with the verifier) for an
    /// access token for this server, validate it like any bearer token, and open a session
    /// that ends with the token. The sign-in cookie works once.
    async fn callback(&self, query: Option<&str>, headers: &HeaderMap) -> Response {
        let (Some(login), Some(validator)) = (&self.login, &self.validator) else {
            return page_error(StatusCode::NOT_FOUND, "sign-in is not configured");
        };
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(error) = param("error") {
            return page_error(
                StatusCode::UNAUTHORIZED,
                &format!("sign-in failed at the authorization server: {error}"),
            );
        }
        let empty = ArgumentDigest::of(None);
        let cookies = self.cookies();
        let remembered = cookie(headers, LOGIN_COOKIE)
            .and_then(|sealed| {
                cookies
                    .sealer
                    .open(
                        &cookies.binding(Purpose::LoginCookie, "", "login", &empty),
                        sealed,
                    )
                    .ok()
            })
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        let Some(remembered) = remembered else {
            return page_error(
                StatusCode::BAD_REQUEST,
                "this sign-in was not started here, or took too long; open the approval page again",
            );
        };
        let field = |name: &str| {
            remembered
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let (state, verifier, id) = (field("state"), field("verifier"), field("id"));
        if param("state").as_deref() != Some(state.as_str()) || !is_id(&id) {
            return page_error(
                StatusCode::BAD_REQUEST,
                "the sign-in's state does not match",
            );
        }
        let Some(code) = param("code") else {
            return page_error(
                StatusCode::BAD_REQUEST,
                "the authorization server sent no code",
            );
        };
        // The sign-in cookie is spent before the client secret goes anywhere: a replayed
        // callback makes the server post nothing.
        let nonce = crate::audit::chain::hex(&Sha256::digest(state.as_bytes()));
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(LOGIN).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now());
        match self.approvals.spend_nonce(&nonce, expires).await {
            Ok(true) => {}
            Ok(false) => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    "this sign-in was used already; open the approval page again",
                );
            }
            Err(e) => return page_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
        let token_endpoint = match login.endpoints().await {
            Ok((_, token)) => token,
            Err(e) => return page_error(StatusCode::BAD_GATEWAY, &e),
        };
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair(
                "redirect_uri",
                &format!("{}/approvals/callback", self.origin),
            )
            .append_pair("client_id", &login.client_id)
            .append_pair("code_verifier", &verifier)
            .append_pair("resource", &self.resource)
            .finish();
        let mut post = login
            .http
            .post(&token_endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(secret) = &login.client_secret {
            use secrecy::ExposeSecret as _;
            // RFC 6749 2.3.1: both halves form-encoded, then Basic.
            let encode =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!(
                "{}:{}",
                encode(&login.client_id),
                encode(secret.expose_secret())
            );
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            post = post.header(header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let reply = post.body(form).send().await;
        let token = match reply {
            Ok(reply) if reply.status().is_success() => {
                reply.json::<serde_json::Value>().await.ok().and_then(|v| {
                    v.get("access_token")
                        .and_then(|t| t.as_str())
                        .map(str::to_owned)
                })
            }
            Ok(reply) => {
                let status = reply.status();
                let text = reply.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                return page_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the token endpoint answered {status}: {text}"),
                );
            }
            Err(e) => {
                return page_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("the token endpoint cannot be reached: {e}"),
                );
            }
        };
        let Some(token) = token else {
            return page_error(
                StatusCode::BAD_GATEWAY,
                "the token endpoint sent no access token",
            );
        };
        let (approver, token_exp) = match validator.validate_with_expiry(&token).await {
            Ok(validated) => validated,
            Err(e) => {
                return page_error(
                    StatusCode::UNAUTHORIZED,
                    &format!("the access token was refused: {e}"),
                );
            }
        };
        if let Some(refused) = self.revoked(approver.id()) {
            return page_error(StatusCode::FORBIDDEN, &refused.to_string());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // The session ends with the token: a person whose token expired signs in again.
        let exp = token_exp.min(now + SESSION.as_secs());
        if exp <= now {
            return page_error(StatusCode::UNAUTHORIZED, "the access token has expired");
        }
        let session = self.cookies().seal_session(&approver, exp);
        let mut response = redirect_to(&format!("/approvals/{id}"));
        set_cookie(
            &mut response,
            SESSION_COOKIE,
            &session,
            "Strict",
            exp - now,
            self.secure(),
        );
        set_cookie(&mut response, LOGIN_COOKIE, "", "Lax", 0, self.secure());
        response
    }

    fn cookies(&self) -> Cookies<'_> {
        Cookies {
            sealer: &self.sealer,
            resource: &self.resource,
        }
    }

    /// The signed-in approver, from the session cookie.
    fn session(&self, headers: &HeaderMap) -> Option<Principal> {
        self.cookies()
            .open_session(cookie(headers, SESSION_COOKIE)?)
    }
}

/// What the doors seal into cookies and forms: each under the key of its purpose, bound to this
/// server's resource.
struct Cookies<'a> {
    sealer: &'a StateSealer,
    resource: &'a str,
}

impl Cookies<'_> {
    /// A binding of what the doors seal for `purpose`: this server's, naming `principal` and
    /// what it is for.
    fn binding<'a>(
        &'a self,
        purpose: Purpose,
        principal: &'a str,
        what: &'static str,
        arguments: &'a ArgumentDigest,
    ) -> Binding<'a> {
        Binding {
            purpose,
            resource: self.resource,
            principal,
            tool: what,
            arguments,
        }
    }

    /// The session cookie of `approver`, good until `exp` (seconds since the epoch).
    fn seal_session(&self, approver: &Principal, exp: u64) -> String {
        let grants: Vec<&str> = approver
            .grants()
            .iter()
            .filter(|g| g.is_active(SystemTime::now()))
            .map(crate::grant::Grant::name)
            .collect();
        let session = json!({ "sub": approver.id(), "grants": grants, "exp": exp }).to_string();
        let empty = ArgumentDigest::of(None);
        self.sealer.seal(
            &self.binding(Purpose::SessionCookie, "", "session", &empty),
            &session,
        )
    }

    fn open_session(&self, sealed: &str) -> Option<Principal> {
        let empty = ArgumentDigest::of(None);
        let text = self
            .sealer
            .open(
                &self.binding(Purpose::SessionCookie, "", "session", &empty),
                sealed,
            )
            .ok()?;
        let session: serde_json::Value = serde_json::from_str(&text).ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let exp = session.get("exp")?.as_u64()?;
        if exp <= now {
            return None;
        }
        let expires = UNIX_EPOCH + Duration::from_secs(exp);
        let mut principal = Principal::new(session.get("sub")?.as_str()?);
        for grant in session.get("grants")?.as_array()? {
            let grant = crate::grant::Grant::new(grant.as_str()?).ok()?;
            principal = principal.with_grant(grant.expiring_at(expires));
        }
        Some(principal)
    }

    /// A form token bound to the approver and the approval, so that a form made for one
    /// session and call decides nothing else.
    fn seal_csrf(&self, approver: &Principal, id: &str) -> String {
        let digest = ArgumentDigest::of(json!({ "approval": id }).as_object());
        self.sealer.seal(
            &self.binding(Purpose::FormToken, approver.id(), "csrf", &digest),
            "csrf",
        )
    }

    fn open_csrf(&self, approver: &Principal, id: &str, token: &str) -> Result<(), ()> {
        let digest = ArgumentDigest::of(json!({ "approval": id }).as_object());
        self.sealer
            .open(
                &self.binding(Purpose::FormToken, approver.id(), "csrf", &digest),
                token,
            )
            .map(|_| ())
            .map_err(|_| ())
    }
}

/// What the JSON API answers about `call`, `status` counting only approvals that still count.
fn call_json(call: &PendingCall, status: &Standing) -> serde_json::Value {
    json!({
        "id": call.id,
        "tool": call.tool,
        "requester": call.principal,
        "arguments": call.arguments,
        "arguments_sha256": call.arguments_sha256,
        "definition_sha256": call.definition_sha256,
        "why": call.why,
        "grant": call.grant,
        "min": call.min,
        "approvals": call.approvals,
        "denial": call.denial,
        "status": status.to_string(),
        "requested_at": call.requested_at,
        "expires_at": call.expires_at,
    })
}

/// Whether the request's `Host`, without its port, is one of `allowed`.
fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

fn bearer_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn set_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    same_site: &str,
    max_age: u64,
    secure: bool,
) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path=/approvals; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn redirect_to(location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn approval_error(error: &ApprovalError) -> Response {
    let status = match error {
        ApprovalError::Unknown(_) => StatusCode::NOT_FOUND,
        ApprovalError::Requester
        | ApprovalError::LacksGrant(_)
        | ApprovalError::Revoked(_)
        | ApprovalError::InvalidApprover { .. } => StatusCode::FORBIDDEN,
        ApprovalError::Store { .. } | ApprovalError::Unrecorded(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ApprovalError::Tampered(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    };
    api_error(status, error.code(), error.to_string())
}

fn api_error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn page_error(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Approval</title></head><body><p id=\"error\">{}</p></body></html>",
        shown(message)
    );
    let mut response = (status, html).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// 256 random bits, base64url: PKCE verifiers and OAuth state. Fails rather than make a
/// guessable one.
fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `text` as a person should read it on the page: characters that do not show written as
/// their escapes, then made safe inside HTML text and attribute values.
fn shown(text: &str) -> String {
    escape(&escape_invisible(text))
}

/// `text` safe inside HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Grant;
    use crate::sealed_state::DEFAULT_STATE_TTL;

    fn session_of(cookies: &Cookies<'_>) -> String {
        let bob = Principal::new("bob@example.com").with_grant(Grant::new("docs:approve").unwrap());
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        cookies.seal_session(&bob, exp)
    }

    #[test]
    fn rejects_session_cookie_as_request_state() {
        let sealer = StateSealer::ephemeral(DEFAULT_STATE_TTL);
        let cookies = Cookies {
            sealer: &sealer,
            resource: "https://mcp.example.com/mcp",
        };
        let session = session_of(&cookies);
        assert!(cookies.open_session(&session).is_some());
        // Presented as requestState of any call of this very server, it opens as nothing.
        let empty = ArgumentDigest::of(None);
        for (principal, tool) in [("", "session"), ("bob@example.com", "delete")] {
            let binding =
                Binding::request_state("https://mcp.example.com/mcp", principal, tool, &empty);
            assert_eq!(
                sealer.open(&binding, &session),
                Err(crate::sealed_state::StateRejected::Tampered)
            );
        }
        // Nor does a form token open as a session.
        let csrf = cookies.seal_csrf(&Principal::new("bob@example.com"), &"a".repeat(32));
        assert!(cookies.open_session(&csrf).is_none());
    }

    #[test]
    fn rejects_session_cookie_of_another_resource() {
        // Two servers sharing the sealing keys, as replicas of different deployments might.
        let sealer = StateSealer::ephemeral(DEFAULT_STATE_TTL);
        let one = Cookies {
            sealer: &sealer,
            resource: "https://one.example.com/mcp",
        };
        let other = Cookies {
            sealer: &sealer,
            resource: "https://other.example.com/mcp",
        };
        let session = session_of(&one);
        assert!(one.open_session(&session).is_some());
        assert!(other.open_session(&session).is_none());
    }
}
