//! Tiny HTML pages for browsers that land on our endpoints without a Kiosque return URL.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

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

/// A page with a title, a sentence and, when given, a link (followed at once by the browser).
pub fn page(status: StatusCode, title: &str, text: &str, next: Option<&str>) -> Response {
    let (refresh, link) = match next {
        Some(url) => {
            let url = escape(url);
            (
                format!(r#"<meta http-equiv="refresh" content="0;url={url}">"#),
                format!(r#"<p><a href="{url}">Continuer</a></p>"#),
            )
        }
        None => (String::new(), String::new()),
    };
    let body = format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\">{refresh}<title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p>{link}</body></html>",
        title = escape(title),
        text = escape(text),
    );
    (status, Html(body)).into_response()
}

/// The French sentence for a status word.
pub fn status_text(status: &str) -> &'static str {
    match status {
        "paid" => "Votre paiement est enregistré. Merci.",
        "announced" => {
            "Votre paiement a été transmis ; il sera enregistré dès que la Trésorerie l'aura confirmé. Merci."
        }
        "refused" => "Votre paiement a été refusé ; la facture reste à payer.",
        "abandoned" => "Le paiement a été abandonné ; la facture reste à payer.",
        "expired" => "Le délai de paiement est dépassé ; la facture reste à payer.",
        _ => "Votre paiement est en cours de traitement.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
