//! `GET /reconciliation/{tenant}/{yyyy-mm}` (and `.csv`): the month's money per budget —
//! invoiced, collected by channel, PayFiP commissions, rejects, reversals, outstanding — with
//! a chart of collections by day and channel drawn as SVG on the server. Same figures as
//! `encaisse report reconciliation` (one query: `ops::reconciliation`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use encaisse_pipelines::stages::ops::reconciliation::{
    self, Channel, Daily, Figures, Reconciliation, month_bounds,
};

use super::param;
use crate::console::html::{Lang, esc, euros, url_part};
use crate::console::{Console, Ctx};

fn channel_label(l: Lang, c: Channel) -> &'static str {
    match c {
        Channel::Card => l.t("Carte", "Card"),
        Channel::OneOffDebit => l.t("Prélèvement unique", "One-off debit"),
        Channel::DirectDebit => l.t("Prélèvement", "Direct debit"),
        Channel::Tip => "TIP",
        Channel::Counter => l.t("Guichet", "Counter"),
        Channel::Other => l.t("Autre", "Other"),
    }
}

fn channel_colour(c: Channel) -> &'static str {
    match c {
        Channel::Card => "#000091",
        Channel::OneOffDebit => "#6a6af4",
        Channel::DirectDebit => "#18753c",
        Channel::Tip => "#b34000",
        Channel::Counter => "#a94645",
        Channel::Other => "#666666",
    }
}

/// Loads the month; the error is the page to show.
async fn load(
    console: &Console,
    ctx: &Ctx,
    tenant: &str,
    month: &str,
) -> Result<Reconciliation, Response> {
    let l = ctx.lang;
    if !ctx.session.sees(tenant) || !console.tenants.iter().any(|t| t.id == tenant) {
        return Err(ctx
            .error(
                StatusCode::NOT_FOUND,
                l.t("Collectivité inconnue.", "No such tenant."),
            )
            .into_response());
    }
    let bounds = month_bounds(month).map_err(|e| {
        ctx.error(StatusCode::BAD_REQUEST, &e.to_string())
            .into_response()
    })?;
    let t = tenant.to_string();
    console
        .ledger
        .inspect(move |tx| reconciliation::reconcile(tx, &t, &bounds))
        .await
        .map_err(|e| ctx.ledger_error(&e).into_response())
}

/// `GET /reconciliation?tenant=&month=`: the form, or a redirect to the chosen month.
pub async fn choose(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let l = ctx.lang;
    if let (Some(t), Some(m)) = (param(&params, "tenant"), param(&params, "month")) {
        return Redirect::to(&format!("/reconciliation/{}/{}", url_part(t), url_part(m)))
            .into_response();
    }
    let options = super::tenant_options(&console, &ctx);
    let this_month = chrono::Utc::now().format("%Y-%m").to_string();
    let body = format!(
        "<form method=\"get\" action=\"/reconciliation\" class=\"filters\">{}\
         <div><label for=\"month\">{}</label><input id=\"month\" name=\"month\" type=\"month\" value=\"{}\" required pattern=\"[0-9]{{4}}-[0-9]{{2}}\"></div>\
         <div><button type=\"submit\">{}</button></div></form>",
        super::select("tenant", l.t("Collectivité", "Tenant"), &options, None),
        l.t("Mois (AAAA-MM)", "Month (YYYY-MM)"),
        esc(&this_month),
        l.t("Afficher", "Show"),
    );
    ctx.page(l.t("Rapprochement", "Reconciliation"), &body)
        .into_response()
}

/// `GET /reconciliation/{tenant}/{month}` and `…/{month}.csv`.
pub async fn month(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Path((tenant, month)): Path<(String, String)>,
) -> Response {
    let l = ctx.lang;
    let (month, csv) = match month.strip_suffix(".csv") {
        Some(m) => (m.to_string(), true),
        None => (month, false),
    };
    let r = match load(&console, &ctx, &tenant, &month).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if csv {
        let name = format!("rapprochement-{}-{}.csv", r.tenant, r.month);
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            reconciliation::to_csv(&r),
        )
            .into_response();
    }
    let mut body = format!(
        "<p><a href=\"/reconciliation/{}/{}.csv\" download>{}</a></p>",
        url_part(&r.tenant),
        url_part(&r.month),
        l.t("Télécharger en CSV", "Download as CSV"),
    );
    body.push_str(&figures_table(l, &r));
    body.push_str(&chart(l, &r.month, &r.daily));
    body.push_str(&format!(
        "<p class=\"note\">{}</p>",
        l.t(
            "Encaissé : paiements vus dans le mois (une confirmation par une seconde source n'est pas comptée deux fois). Commissions : opérations PayFiP payées dans le mois, au tarif daté du jour du paiement. Reste dû : des factures du mois, ce qui n'est pas (ou plus) payé aujourd'hui. Mois et jours à l'heure de Paris ; « — » : activité non enregistrée (factures d'avant son suivi).",
            "Collected: payments seen in the month (a confirmation by a second source is not counted twice). Commissions: PayFiP operations paid in the month, at the dated tariff of the payment's day. Outstanding: of the month's invoices, what is not (or no longer) paid today. Months and days in Paris time; \"—\": activity not recorded (invoices from before it was kept)."
        )
    ));
    let title = format!(
        "{} {} — {}",
        l.t("Rapprochement", "Reconciliation"),
        r.tenant,
        r.month
    );
    ctx.page(&title, &body).into_response()
}

fn figures_table(l: Lang, r: &Reconciliation) -> String {
    let mut out = format!(
        "<table class=\"sortable\" id=\"reconciliation\"><caption>{}</caption><thead><tr>",
        l.t("Par budget et activité", "Per budget and activity")
    );
    let mut headers = vec![
        l.t("Budget", "Budget").to_string(),
        l.t("Activité", "Activity").to_string(),
        l.t("Factures", "Invoices").to_string(),
        l.t("Facturé", "Invoiced").to_string(),
    ];
    headers.extend(
        Channel::ALL
            .iter()
            .map(|c| format!("{} {}", l.t("Encaissé", "Collected"), channel_label(l, *c))),
    );
    headers.extend(
        [
            l.t("Encaissé total", "Collected total"),
            l.t("Commissions PayFiP", "PayFiP commissions"),
            l.t("Rejets", "Rejects"),
            l.t("Montant rejeté", "Rejected amount"),
            l.t("Annulé", "Reversed"),
            l.t("Reste dû", "Outstanding"),
        ]
        .map(str::to_string),
    );
    for h in &headers {
        let _ = write!(
            out,
            "<th scope=\"col\" aria-sort=\"none\"><button type=\"button\">{}</button></th>",
            esc(h)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for line in &r.lines {
        out.push_str(&figures_row(
            l,
            (&line.group.budget, line.group.activity.as_deref()),
            &line.figures,
            "td",
        ));
    }
    out.push_str("</tbody><tfoot>");
    out.push_str(&figures_row(
        l,
        (l.t("Total", "Total"), Some("")),
        &r.totals,
        "th",
    ));
    out.push_str("</tfoot></table>");
    out
}

/// One line; an activity of `None` is shown "—" (unknown).
fn figures_row(
    l: Lang,
    (budget, activity): (&str, Option<&str>),
    f: &Figures,
    cell: &str,
) -> String {
    let cells = f.cells(|cents| euros(l, cents));
    let mut out = format!(
        "<tr class=\"budget\" data-budget=\"{}\" data-activity=\"{}\"><{cell} scope=\"row\">{}</{cell}><td>{}</td>",
        esc(budget),
        esc(activity.unwrap_or_default()),
        esc(budget),
        esc(activity.unwrap_or("—"))
    );
    let names = [
        "invoices",
        "invoiced",
        "card",
        "one_off_debit",
        "direct_debit",
        "tip",
        "counter",
        "other",
        "collected",
        "commissions",
        "rejects",
        "rejected",
        "reversed",
        "outstanding",
    ];
    for (value, name) in cells.iter().zip(names) {
        let _ = write!(
            out,
            "<td class=\"num\" data-field=\"{name}\">{}</td>",
            esc(value)
        );
    }
    out.push_str("</tr>");
    out
}

/// Collections by day and channel, stacked bars, drawn here (no script, no library).
fn chart(l: Lang, month: &str, daily: &[Daily]) -> String {
    let mut by_day: BTreeMap<u32, Vec<&Daily>> = BTreeMap::new();
    for d in daily {
        if let Some(day) = d.day.get(8..10).and_then(|s| s.parse().ok()) {
            by_day.entry(day).or_default().push(d);
        }
    }
    let max = by_day
        .values()
        .map(|ds| ds.iter().map(|d| d.cents.max(0)).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, left, bottom) = (31 * 20 + 60, 240, 50, 30);
    let plot = height - bottom - 10;
    let title = l.t(
        "Encaissements par jour et par canal",
        "Collections by day and channel",
    );
    let mut svg = format!(
        "<figure><svg role=\"img\" aria-labelledby=\"chart-title\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"chart-title\">{} {}</title>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>",
        esc(title),
        esc(month),
        height - bottom,
        width - 10,
        height - bottom
    );
    let _ = write!(
        svg,
        "<text x=\"2\" y=\"14\" font-size=\"11\">{}</text>",
        esc(&euros(l, max))
    );
    for day in 1..=31u32 {
        let x = left + (day as i64 - 1) * 20 + 3;
        if day % 5 == 1 {
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\" font-size=\"11\">{day}</text>",
                height - 12
            );
        }
        let mut y = (height - bottom) as i64;
        for d in by_day.get(&day).into_iter().flatten() {
            let h = d.cents.max(0) * plot as i64 / max;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"{h}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                channel_colour(d.channel),
                esc(&d.day),
                channel_label(l, d.channel),
                esc(&euros(l, d.cents))
            );
        }
    }
    svg.push_str("</svg><figcaption>");
    for c in Channel::ALL {
        let _ = write!(
            svg,
            "<span class=\"legend\"><svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" fill=\"{}\"/></svg> {}</span> ",
            channel_colour(c),
            channel_label(l, c)
        );
    }
    svg.push_str("</figcaption></figure>");
    svg
}
