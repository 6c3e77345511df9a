//! HTML made on the server with `format!`: every text from the ledger, the configuration or
//! the request goes through [`esc`] (or [`attr`]) before it is written, so nothing outside
//! can inject markup. One layout, French by default, English on request.

use std::fmt::Write;

use super::session::Session;

/// The language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    /// `fr` or `en`; anything else: French.
    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("fr") => Some(Lang::Fr),
            Some("en") => Some(Lang::En),
            _ => None,
        }
    }

    /// The first language of an `Accept-Language` header that the console speaks.
    pub fn from_accept(header: &str) -> Option<Lang> {
        header.split(',').find_map(Lang::parse)
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    pub fn t(self, fr: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }
}

/// Text escaped for an element's content or a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Text escaped for a URL query value (then for HTML).
pub fn url_part(text: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    esc(&encoded)
}

/// Cents as euros with a comma (`1 234,56 €` in French, `€1,234.56` style kept simple in
/// English: `1234.56`).
pub fn euros(lang: Lang, cents: i64) -> String {
    let amount = rust_decimal::Decimal::new(cents, 2).to_string();
    match lang {
        Lang::Fr => format!("{} €", amount.replace('.', ",")),
        Lang::En => format!("€{amount}"),
    }
}

/// A page: title, the user's nav, content.
pub fn page(lang: Lang, title: &str, session: Option<&Session>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} — encaisse</title><link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/console.js\" defer></script></head><body>",
        lang.code(),
        esc(title)
    );
    out.push_str("<a class=\"skip\" href=\"#main\">");
    out.push_str(lang.t("Aller au contenu", "Skip to content"));
    out.push_str("</a><header><span class=\"brand\">encaisse</span>");
    if let Some(s) = session {
        out.push_str("<nav aria-label=\"menu\"><ul>");
        for (href, fr, en) in [
            ("/", "Vue d'ensemble", "Overview"),
            ("/parked", "Messages en attente", "Parked messages"),
            ("/invoices", "Factures", "Invoices"),
            ("/reconciliation", "Rapprochement", "Reconciliation"),
            ("/files", "Fichiers", "Files"),
            ("/audit", "Journal des actions", "Audit trail"),
        ] {
            let _ = write!(out, "<li><a href=\"{href}\">{}</a></li>", lang.t(fr, en));
        }
        out.push_str("</ul></nav>");
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/logout\" class=\"logout\">{}\
             <span class=\"who\">{} ({})</span> <button type=\"submit\">{}</button></form>",
            csrf_field(s),
            esc(&s.user),
            s.role.as_str(),
            lang.t("Se déconnecter", "Log out")
        );
    }
    let other = match lang {
        Lang::Fr => ("en", "English"),
        Lang::En => ("fr", "Français"),
    };
    let _ = write!(
        out,
        "<a class=\"lang\" href=\"?lang={}\" hreflang=\"{}\">{}</a></header><main id=\"main\"><h1>{}</h1>{body}</main></body></html>",
        other.0,
        other.0,
        other.1,
        esc(title)
    );
    out
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// A sortable table: headers (each a button sorting by that column in the browser), rows of
/// cells already escaped (HTML).
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<table class=\"sortable\"><caption>{}</caption><thead><tr>",
        esc(caption)
    );
    for h in headers {
        let _ = write!(
            out,
            "<th scope=\"col\" aria-sort=\"none\"><button type=\"button\">{}</button></th>",
            esc(h)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Page links: previous / next, keeping the other query parameters (`base` ends with `?` or
/// `&`, already escaped).
pub fn pager(lang: Lang, base: &str, page: u32, has_next: bool) -> String {
    let mut out = String::from("<nav class=\"pager\" aria-label=\"pages\">");
    if page > 1 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{base}page={}\">{}</a> ",
            page - 1,
            lang.t("« Précédente", "« Previous")
        );
    }
    let _ = write!(out, "<span>{} {page}</span>", lang.t("Page", "Page"));
    if has_next {
        let _ = write!(
            out,
            " <a rel=\"next\" href=\"{base}page={}\">{}</a>",
            page + 1,
            lang.t("Suivante »", "Next »")
        );
    }
    out.push_str("</nav>");
    out
}

/// A short notice (`ok` or `error`).
pub fn notice(kind: &str, text: &str) -> String {
    format!(
        "<p class=\"notice {kind}\" role=\"status\">{}</p>",
        esc(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(url_part("a b&c<"), "a+b%26c%3C");
    }

    #[test]
    fn languages_come_from_codes_and_accept_language() {
        assert_eq!(Lang::from_accept("en-GB,en;q=0.9"), Some(Lang::En));
        assert_eq!(Lang::from_accept("de-DE, fr;q=0.5"), Some(Lang::Fr));
        assert_eq!(Lang::from_accept("de"), None);
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
    }

    #[test]
    fn euros_are_exact_to_the_cent() {
        assert_eq!(euros(Lang::Fr, 123_456), "1234,56 €");
        assert_eq!(euros(Lang::En, -5), "€-0.05");
    }
}
