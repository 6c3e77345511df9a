//! The simulator's HTML pages (payment forms, error pages, auto-submitted returns).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::result::Resultrans;

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(text: &str) -> String {
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

fn hidden_inputs(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            )
        })
        .collect()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{} - PayFiP (simulateur)</title></head><body><h1>{}</h1>{body}<p><small>Simulateur PayFiP encaisse - aucun paiement réel.</small></p></body></html>",
        escape(title),
        escape(title)
    )
}

/// An error page naming the gateway code (`P1`, `P3`, `P4`, `R3`, …). The real gateway's
/// presentation of these errors is not documented \[U\]: HTTP 200 and the code in the page.
pub(super) fn error_page(code: &str, libelle: &str) -> Response {
    let body = format!(
        "<p class=\"erreur\" data-code=\"{}\">Erreur {} : {}</p>",
        escape(code),
        escape(code),
        escape(libelle)
    );
    (StatusCode::OK, Html(page("Paiement impossible", &body))).into_response()
}

/// A page with a bad request (missing form field…): HTTP 400.
pub(super) fn bad_request(message: &str) -> Response {
    let body = format!("<p class=\"erreur\">{}</p>", escape(message));
    (
        StatusCode::BAD_REQUEST,
        Html(page("Requête incorrecte", &body)),
    )
        .into_response()
}

/// The outcome choice: a form posting `hidden` fields and `resultrans` to `action`.
pub(super) fn outcome_form(
    title: &str,
    summary: &[(&str, String)],
    action: &str,
    hidden: &[(&str, &str)],
) -> Response {
    let mut body = String::from("<dl>");
    for (label, value) in summary {
        body.push_str(&format!(
            "<dt>{}</dt><dd>{}</dd>",
            escape(label),
            escape(value)
        ));
    }
    body.push_str("</dl>");
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\">",
        escape(action)
    ));
    body.push_str(&hidden_inputs(hidden));
    for (i, r) in Resultrans::ALL.iter().enumerate() {
        let checked = if i == 0 { " checked" } else { "" };
        body.push_str(&format!(
            "<label><input type=\"radio\" name=\"resultrans\" value=\"{r}\"{checked}> {r} - {}</label><br>",
            escape(r.label())
        ));
    }
    body.push_str("<button type=\"submit\">Valider</button></form>");
    Html(page(title, &body)).into_response()
}

/// A page whose form posts `fields` to `action` as soon as it loads (the browser's POST
/// return).
pub(super) fn auto_post(action: &str, fields: &[(&str, &str)]) -> Response {
    let mut body = format!(
        "<form id=\"retour\" method=\"post\" action=\"{}\">",
        escape(action)
    );
    body.push_str(&hidden_inputs(fields));
    body.push_str("<button type=\"submit\">Retour au site</button></form><script>document.getElementById('retour').submit();</script>");
    Html(page("Retour au site", &body)).into_response()
}

/// A final page when there is nowhere to return to.
pub(super) fn result_page(result: Resultrans) -> Response {
    let body = format!(
        "<p class=\"resultat\" data-resultrans=\"{result}\">{}</p>",
        escape(result.label())
    );
    Html(page("Résultat du paiement", &body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">O'Neil & co</a>"),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
    }
}
