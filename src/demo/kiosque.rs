//! The families' side of online payment, over real HTTP: the Kiosque famille asks the
//! daemon's payment API for a payment (`POST /api/v1/tenants/{tenant}/payments`), then the
//! family's browser opens the gateway page it was given (the PayFiP simulator), chooses an
//! outcome and submits the form. The simulator then notifies the daemon (web service) or
//! sends it the result (classic URL) — the demo only plays the browser.
//!
//! Redirects are not followed: the last one leads to the Kiosque famille's own site
//! (`https://kiosque.<commune>.example/…`), which does not exist here.

use std::time::{Duration, Instant};

use encaisse_payfip::Resultrans;
use reqwest::{Client, StatusCode, Url};
use serde_json::Value;

/// Where the Kiosque famille wants families sent back (within the tenants'
/// `return_url_prefixes` of `config/encaisse.toml`).
pub fn return_url(tenant: &str) -> String {
    format!("https://kiosque.{tenant}.example/paiement/retour")
}

/// A payment the API started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// `payfip:<idop>` (web service) or `tipi:<refdet>` (classic).
    pub payment_id: String,
    /// `web_service` or `classic`.
    pub channel: String,
    pub redirect_url: String,
    pub amount: String,
}

/// What went wrong on the way.
#[derive(Debug, thiserror::Error)]
pub enum KiosqueError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("payment API for {invoice}: HTTP {status}: {body}")]
    Refused {
        invoice: String,
        status: u16,
        body: String,
    },
    #[error("{url}: the gateway page has no payment form")]
    NoForm { url: String },
}

fn http(url: &str, e: impl std::fmt::Display) -> KiosqueError {
    KiosqueError::Http {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// A browser that follows no redirect (and a Kiosque famille back end).
pub fn client() -> Result<Client, KiosqueError> {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| http("client", e))
}

/// `POST /api/v1/tenants/{tenant}/payments` for `invoice`. A titre is payable online only
/// once the Trésorerie took it in charge: `409 not_yet_payable` is asked again until
/// `patience` has passed.
pub async fn start_payment(
    client: &Client,
    daemon: &str,
    tenant: &str,
    token: &str,
    invoice: &str,
    patience: Duration,
) -> Result<Started, KiosqueError> {
    let url = format!("{daemon}/api/v1/tenants/{tenant}/payments");
    let body = serde_json::json!({"invoice": invoice, "return_url": return_url(tenant)});
    let deadline = Instant::now() + patience;
    loop {
        let response = client
            .post(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| http(&url, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| http(&url, e))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == StatusCode::CREATED {
            let field = |name: &str| json[name].as_str().unwrap_or_default().to_string();
            return Ok(Started {
                payment_id: field("payment_id"),
                channel: field("channel"),
                redirect_url: field("redirect_url"),
                amount: field("amount"),
            });
        }
        let not_yet = status == StatusCode::CONFLICT && json["error"] == "not_yet_payable";
        if !not_yet || Instant::now() >= deadline {
            return Err(KiosqueError::Refused {
                invoice: invoice.to_string(),
                status: status.as_u16(),
                body: text,
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The family on the gateway: opens the page, picks `outcome`, submits. Returns the HTTP
/// status of the submission (a redirect or a page sending the browser back).
pub async fn pay_on_gateway(
    client: &Client,
    redirect_url: &str,
    outcome: Resultrans,
) -> Result<u16, KiosqueError> {
    let page = client
        .get(redirect_url)
        .send()
        .await
        .map_err(|e| http(redirect_url, e))?;
    if !page.status().is_success() {
        return Err(http(redirect_url, format!("HTTP {}", page.status())));
    }
    let html = page.text().await.map_err(|e| http(redirect_url, e))?;
    let form = Form::parse(&html).ok_or_else(|| KiosqueError::NoForm {
        url: redirect_url.to_string(),
    })?;
    let base = Url::parse(redirect_url).map_err(|e| http(redirect_url, e))?;
    let action = base.join(&form.action).map_err(|e| http(redirect_url, e))?;
    let mut fields = form.hidden;
    fields.push(("resultrans".to_string(), outcome.to_string()));
    let submitted = client
        .post(action.clone())
        .form(&fields)
        .send()
        .await
        .map_err(|e| http(action.as_str(), e))?;
    Ok(submitted.status().as_u16())
}

/// The first form of a page: its action and hidden fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
}

impl Form {
    fn parse(html: &str) -> Option<Form> {
        let start = html.find("<form")?;
        let end = html[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e);
        let form = &html[start..end];
        let tag_end = form.find('>')?;
        let action = attribute(&form[..tag_end], "action")?;
        let hidden = form
            .split("<input")
            .skip(1)
            .filter_map(|input| {
                let tag = &input[..input.find('>')?];
                (attribute(tag, "type")? == "hidden")
                    .then(|| Some((attribute(tag, "name")?, attribute(tag, "value")?)))?
            })
            .collect();
        Some(Form { action, hidden })
    }
}

/// The value of `name="…"` in a tag, HTML entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gateway_form() {
        let html = r#"<h1>x</h1><dl><dt>a</dt></dl><form method="post" action="/tpa/paiement.web"><input type="hidden" name="session" value="a&amp;b"><label><input type="radio" name="resultrans" value="P" checked> P</label></form>"#;
        let form = Form::parse(html).unwrap();
        assert_eq!(form.action, "/tpa/paiement.web");
        assert_eq!(
            form.hidden,
            vec![("session".to_string(), "a&b".to_string())]
        );
        assert_eq!(Form::parse("<p>Erreur P1</p>"), None);
    }
}
