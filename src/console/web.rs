//! Routing, the logged-in user of a request ([`Ctx`]), login and logout, language choice,
//! security headers, and how a page or an error becomes a response.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::audit::{self, Entry};
use super::html::{self, Lang};
use super::session::{Session, same_token};
use super::{Console, assets, pages, password};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "encaisse_session";
/// Name of the language cookie.
const LANG_COOKIE: &str = "encaisse_lang";

/// A finished page (status, HTML).
pub struct Page {
    pub status: StatusCode,
    pub html: String,
}

impl Page {
    pub fn ok(html: String) -> Page {
        Page {
            status: StatusCode::OK,
            html,
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.html,
        )
            .into_response()
    }
}

/// The logged-in user of a request and the page language. Extracting it from a request
/// without a live session redirects to `/login`.
pub struct Ctx {
    pub session: Session,
    pub lang: Lang,
}

impl Ctx {
    /// A page in the user's language, with the layout.
    pub fn page(&self, title: &str, body: &str) -> Page {
        Page::ok(html::page(self.lang, title, Some(&self.session), body))
    }

    /// An error page with `status`.
    pub fn error(&self, status: StatusCode, message: &str) -> Page {
        let title = self.lang.t("Erreur", "Error");
        Page {
            status,
            html: html::page(
                self.lang,
                title,
                Some(&self.session),
                &html::notice("error", message),
            ),
        }
    }

    /// The error page of a ledger failure (the detail goes to the log, not the page).
    pub fn ledger_error(&self, error: &dyn std::fmt::Display) -> Page {
        tracing::error!(error = %error, "Console: ledger query failed.");
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            self.lang.t(
                "Le registre ne répond pas ; réessayez dans un instant.",
                "The ledger does not answer; try again in a moment.",
            ),
        )
    }

    /// Refuses a form that does not carry this session's CSRF token, or a user who is not
    /// ops when `ops_only`.
    pub fn check_form(&self, form: &HashMap<String, String>, ops_only: bool) -> Result<(), Page> {
        if ops_only && !self.session.is_ops() {
            return Err(self.error(
                StatusCode::FORBIDDEN,
                self.lang.t(
                    "Action réservée à l'exploitation (rôle ops).",
                    "Only operations staff (role ops) may do this.",
                ),
            ));
        }
        let token = form.get("csrf").map(String::as_str).unwrap_or_default();
        if !same_token(token, &self.session.csrf) {
            return Err(self.error(
                StatusCode::FORBIDDEN,
                self.lang.t(
                    "Formulaire expiré ou falsifié : rechargez la page.",
                    "This form expired or was forged: reload the page.",
                ),
            ));
        }
        Ok(())
    }

    /// Records an action by this user.
    pub fn entry(&self, action: &str, outcome: impl Into<String>) -> Entry {
        Entry::new(
            &self.session.user,
            self.session.role.as_str(),
            action,
            outcome,
        )
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_lang(query: Option<&str>) -> Option<Lang> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::parse(&v))
}

/// The language of a request: `?lang=`, else the cookie, else `Accept-Language`, else
/// French.
fn request_lang(parts: &Parts) -> Lang {
    query_lang(parts.uri.query())
        .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse))
        .or_else(|| {
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept)
        })
        .unwrap_or(Lang::Fr)
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let lang = request_lang(parts);
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|id| console.sessions.touch(id))
            .map(|session| Ctx { session, lang })
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// The language of a request that may have no session (the login page).
struct AnyLang(Lang);

impl<S: Send + Sync> FromRequestParts<S> for AnyLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AnyLang(request_lang(parts)))
    }
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .merge(pages::routes())
        .layer(middleware::from_fn(remember_lang))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// `?lang=xx` also sets the language cookie, so the choice sticks.
async fn remember_lang(request: Request, next: Next) -> Response {
    let chosen = query_lang(request.uri().query());
    let mut response = next.run(request).await;
    if let Some(lang) = chosen
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict",
            lang.code()
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// No framing, no script or style from elsewhere, nothing cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        assets::CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        assets::JS,
    )
}

fn login_form(lang: Lang, status: StatusCode, message: Option<&str>) -> Page {
    let mut body = String::new();
    if let Some(m) = message {
        body.push_str(&html::notice("error", m));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/login\" class=\"login\">\
         <label for=\"username\">{}</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">{}</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <p><button type=\"submit\">{}</button></p></form>",
        lang.t("Identifiant", "User name"),
        lang.t("Mot de passe", "Password"),
        lang.t("Se connecter", "Log in"),
    ));
    Page {
        status,
        html: html::page(lang, lang.t("Connexion", "Log in"), None, &body),
    }
}

async fn login_page(AnyLang(lang): AnyLang) -> Page {
    login_form(lang, StatusCode::OK, None)
}

async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AnyLang(lang): AnyLang,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let name = form.get("username").cloned().unwrap_or_default();
    let given = form.get("password").cloned().unwrap_or_default();
    let (user_key, ip_key) = (format!("user:{name}"), format!("ip:{}", peer.ip()));
    let keys = [user_key.as_str(), ip_key.as_str()];
    if console.throttle.blocked(&keys) {
        audit::record(
            &console.ledger,
            Entry::new(&name, "", "login_refused", "too many failed attempts")
                .target(peer.ip().to_string()),
        )
        .await;
        return login_form(
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            Some(lang.t(
                "Trop d'essais manqués : réessayez dans quelques minutes.",
                "Too many failed attempts: try again in a few minutes.",
            )),
        )
        .into_response();
    }
    let user = console
        .settings
        .users
        .iter()
        .find(|u| u.name == name)
        .cloned();
    let phc = user.as_ref().map_or_else(
        || password::decoy().to_string(),
        |u| u.password_hash.clone(),
    );
    let matches = tokio::task::spawn_blocking(move || password::verify(&given, &phc))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if matches => {
            console.throttle.succeeded(&[user_key.as_str()]);
            let id = console
                .sessions
                .open(&user.name, user.role, user.tenants.clone());
            audit::record(
                &console.ledger,
                Entry::new(&user.name, user.role.as_str(), "login", "done")
                    .target(peer.ip().to_string()),
            )
            .await;
            tracing::info!(user = %user.name, role = user.role.as_str(), "Console login.");
            let secure = if console.settings.secure_cookie {
                "; Secure"
            } else {
                ""
            };
            let cookie =
                format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
            let mut response = Redirect::to("/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        _ => {
            console.throttle.failed(&keys);
            audit::record(
                &console.ledger,
                Entry::new(&name, "", "login_refused", "wrong user name or password")
                    .target(peer.ip().to_string()),
            )
            .await;
            tracing::warn!(client = %peer.ip(), "Console login refused.");
            login_form(
                lang,
                StatusCode::UNAUTHORIZED,
                Some(lang.t(
                    "Identifiant ou mot de passe incorrect.",
                    "Wrong user name or password.",
                )),
            )
            .into_response()
        }
    }
}

async fn logout(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(page) = ctx.check_form(&form, false) {
        return page.into_response();
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        console.sessions.close(id);
    }
    audit::record(&console.ledger, ctx.entry("logout", "done")).await;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("encaisse_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}
