//! `GET /parked` (filters as `encaisse dlq list`, grouped or listed), `GET /parked/{id}` (the
//! same view as `encaisse dlq show`: decoded, personal data masked, failure history), and for
//! ops only: replay and discard (with a reason) of one message or a whole group.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use encaisse_ledger::OpsStore;
use encaisse_pipelines::stages::ops::replay::{self, Outcome, Replayer};
use encaisse_pipelines::stages::ops::show;
use encaisse_pipelines::stages::ops::store::{Filter, GroupKey, State as ParkedState};
use serde_json::Value;

use super::{PAGE_SIZE, input, page_number, param, select};
use crate::console::html::{csrf_field, esc, notice, pager, table, url_part};
use crate::console::{Console, Ctx, Page};

fn parse_state(text: Option<&str>) -> Option<ParkedState> {
    match text {
        Some("all") => None,
        Some("replayed") => Some(ParkedState::Replayed),
        Some("discarded") => Some(ParkedState::Discarded),
        _ => Some(ParkedState::Parked),
    }
}

/// The filter of the request; a user restricted to some tenants always filters on one of
/// them (`tenant`, else their first).
fn filter_of(
    console: &Console,
    ctx: &Ctx,
    params: &HashMap<String, String>,
) -> Result<Filter, String> {
    let group = param(params, "group").map(GroupKey::parse).transpose()?;
    let mut tenant = param(params, "tenant").map(str::to_string);
    if !ctx.session.tenants.is_empty() && !tenant.as_deref().is_some_and(|t| ctx.session.sees(t)) {
        tenant = console.visible_tenants(ctx).first().map(|t| t.id.clone());
    }
    Ok(Filter {
        tenant,
        stage: param(params, "stage").map(str::to_string),
        class: param(params, "class").map(str::to_string),
        since: param(params, "since").map(str::to_string),
        group,
        invoice_key: param(params, "invoice").map(str::to_string),
        state: parse_state(param(params, "state")),
    })
}

fn filter_form(
    console: &Console,
    ctx: &Ctx,
    params: &HashMap<String, String>,
    filter: &Filter,
) -> String {
    let l = ctx.lang;
    let mut tenants = Vec::new();
    if ctx.session.tenants.is_empty() {
        tenants.push((String::new(), l.t("toutes", "all").to_string()));
    }
    tenants.extend(super::tenant_options(console, ctx));
    let states = [
        ("parked", l.t("en attente", "parked")),
        ("replayed", l.t("rejoués", "replayed")),
        ("discarded", l.t("écartés", "discarded")),
        ("all", l.t("tous", "all")),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    let classes = [
        ("", l.t("toutes", "all")),
        ("transient", l.t("transitoire", "transient")),
        ("permanent", l.t("permanente", "permanent")),
        ("poison", l.t("illisible (poison)", "poison")),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    let views = [
        ("groups", l.t("par groupe", "grouped")),
        ("list", l.t("liste", "list")),
    ]
    .map(|(v, t)| (v.to_string(), t.to_string()));
    format!(
        "<form method=\"get\" action=\"/parked\" class=\"filters\" role=\"search\">{}{}{}{}{}{}{}<div><button type=\"submit\">{}</button></div></form>",
        select(
            "tenant",
            l.t("Collectivité", "Tenant"),
            &tenants,
            filter.tenant.as_deref()
        ),
        select(
            "state",
            l.t("État", "State"),
            &states,
            param(params, "state").or(Some("parked"))
        ),
        select(
            "class",
            l.t("Classe d'erreur", "Error class"),
            &classes,
            filter.class.as_deref()
        ),
        input("stage", l.t("Étape", "Stage"), filter.stage.as_deref()),
        input(
            "group",
            l.t("Groupe (étape/erreur)", "Group (stage/error)"),
            filter.group.as_ref().map(|g| g.key()).as_deref()
        ),
        input(
            "since",
            l.t("Depuis (RFC 3339)", "Since (RFC 3339)"),
            filter.since.as_deref()
        ),
        select(
            "view",
            l.t("Affichage", "View"),
            &views,
            param(params, "view").or(Some("groups"))
        ),
        l.t("Filtrer", "Filter"),
    )
}

/// A group's forms: replay all, discard all with a reason (ops only).
fn group_forms(ctx: &Ctx, group: &str, tenant: Option<&str>) -> String {
    let l = ctx.lang;
    let id = url_part(group).replace(['%', '+', '.'], "_");
    let tenant_field = tenant
        .map(|t| {
            format!(
                "<input type=\"hidden\" name=\"tenant\" value=\"{}\">",
                esc(t)
            )
        })
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"/parked-group/replay\" class=\"inline\">{csrf}{tenant_field}\
         <input type=\"hidden\" name=\"group\" value=\"{g}\"><button type=\"submit\">{replay}</button></form> \
         <form method=\"post\" action=\"/parked-group/discard\" class=\"inline\">{csrf}{tenant_field}\
         <input type=\"hidden\" name=\"group\" value=\"{g}\">\
         <label for=\"reason-{id}\">{reason}</label><input id=\"reason-{id}\" name=\"reason\" required> \
         <button type=\"submit\">{discard}</button></form>",
        csrf = csrf_field(&ctx.session),
        g = esc(group),
        replay = l.t("Tout rejouer", "Replay all"),
        reason = l.t("Motif", "Reason"),
        discard = l.t("Tout écarter", "Discard all"),
    )
}

pub async fn list(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    let l = ctx.lang;
    let filter = match filter_of(&console, &ctx, &params) {
        Ok(filter) => filter,
        Err(message) => return ctx.error(StatusCode::BAD_REQUEST, &message),
    };
    let grouped = param(&params, "view") != Some("list");
    let page = page_number(&params);
    let mut body = filter_form(&console, &ctx, &params, &filter);
    if let Some(n) = param(&params, "notice") {
        body.push_str(&notice("ok", n));
    }
    if grouped {
        let f = filter.clone();
        let groups = match console.ledger.inspect(move |tx| tx.parked_groups(&f)).await {
            Ok(groups) => groups,
            Err(e) => return ctx.ledger_error(&e),
        };
        let actions = ctx.session.is_ops() && filter.state == Some(ParkedState::Parked);
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                let mut row = vec![
                    format!(
                        "<a href=\"/parked?view=list&amp;group={}&amp;state={}{}\">{}</a>",
                        url_part(&g.group),
                        param(&params, "state").unwrap_or("parked"),
                        filter
                            .tenant
                            .as_deref()
                            .map(|t| format!("&amp;tenant={}", url_part(t)))
                            .unwrap_or_default(),
                        esc(&g.group)
                    ),
                    esc(&g.error_classes.join(", ")),
                    g.count.to_string(),
                    esc(&g.tenants.join(", ")),
                    esc(&g.oldest_parked_at),
                    esc(&g.example_error),
                ];
                if actions {
                    row.push(group_forms(&ctx, &g.group, filter.tenant.as_deref()));
                }
                row
            })
            .collect();
        let mut headers = vec![
            l.t("Groupe", "Group"),
            l.t("Classe", "Class"),
            l.t("Nombre", "Count"),
            l.t("Collectivités", "Tenants"),
            l.t("Plus ancien", "Oldest"),
            l.t("Dernière erreur", "Latest error"),
        ];
        if actions {
            headers.push(l.t("Actions", "Actions"));
        }
        body.push_str(&table(l.t("Groupes", "Groups"), &headers, &rows));
    } else {
        let f = filter.clone();
        let limit = page * PAGE_SIZE + 1;
        let found = match console
            .ledger
            .inspect(move |tx| tx.list_parked(&f, limit))
            .await
        {
            Ok(found) => found,
            Err(e) => return ctx.ledger_error(&e),
        };
        let skip = ((page - 1) * PAGE_SIZE) as usize;
        let has_next = found.len() > skip + PAGE_SIZE as usize;
        let rows: Vec<Vec<String>> = found
            .iter()
            .skip(skip)
            .take(PAGE_SIZE as usize)
            .map(|p| {
                vec![
                    format!("<a href=\"/parked/{}\">{}</a>", p.id, p.id),
                    esc(p.tenant.as_deref().unwrap_or("—")),
                    esc(&p.group),
                    esc(&p.error_class),
                    p.attempts.to_string(),
                    esc(&p.parked_at),
                    esc(p.invoice.as_deref().unwrap_or("—")),
                    esc(p.state.as_str()),
                    esc(&p.error),
                ]
            })
            .collect();
        body.push_str(&table(
            l.t("Messages", "Messages"),
            &[
                "ID",
                l.t("Collectivité", "Tenant"),
                l.t("Groupe", "Group"),
                l.t("Classe", "Class"),
                l.t("Essais", "Attempts"),
                l.t("Mis de côté le", "Parked at"),
                l.t("Facture", "Invoice"),
                l.t("État", "State"),
                l.t("Erreur", "Error"),
            ],
            &rows,
        ));
        let mut base = String::from("/parked?");
        for (k, v) in &params {
            if k != "page" {
                base.push_str(&format!("{}={}&amp;", url_part(k), url_part(v)));
            }
        }
        body.push_str(&pager(l, &base, page, has_next));
    }
    ctx.page(l.t("Messages en attente", "Parked messages"), &body)
}

/// Whether the user may see a message of `tenant` (one with no tenant: only unrestricted
/// users).
fn visible(ctx: &Ctx, tenant: Option<&str>) -> bool {
    tenant.map_or(ctx.session.tenants.is_empty(), |t| ctx.session.sees(t))
}

fn definition_list(items: &[(&str, String)]) -> String {
    let mut out = String::from("<dl>");
    for (term, value) in items {
        out.push_str(&format!("<dt>{}</dt><dd>{value}</dd>", esc(term)));
    }
    out.push_str("</dl>");
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

pub async fn show(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Path(id): Path<i64>,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    let l = ctx.lang;
    let found = console
        .ledger
        .inspect(move |tx| {
            Ok::<_, encaisse_ledger::LedgerError>(match tx.parked(id)? {
                Some(m) => {
                    let earlier = tx.earlier_parkings(&m)?;
                    let actions = tx.parked_actions(id)?;
                    Some((m, earlier, actions))
                }
                None => None,
            })
        })
        .await;
    let (message, earlier, actions) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return ctx.error(
                StatusCode::NOT_FOUND,
                l.t("Message inconnu.", "No such message."),
            );
        }
        Err(e) => return ctx.ledger_error(&e),
    };
    if !visible(&ctx, message.summary.tenant.as_deref()) {
        return ctx.error(
            StatusCode::NOT_FOUND,
            l.t("Message inconnu.", "No such message."),
        );
    }
    let view = match show::view(&message, &earlier, &actions, false) {
        Ok(view) => view,
        Err(e) => return ctx.error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut body = String::new();
    if let Some(n) = param(&params, "notice") {
        body.push_str(&notice("ok", n));
    }
    body.push_str(&definition_list(&[
        (l.t("État", "State"), text(&view["state"])),
        (l.t("Étape", "Stage"), text(&view["stage"])),
        (l.t("Groupe", "Group"), text(&view["group"])),
        (
            l.t("Classe d'erreur", "Error class"),
            text(&view["error_class"]),
        ),
        (l.t("Erreur", "Error"), text(&view["error"])),
        (l.t("Essais", "Attempts"), text(&view["attempts"])),
        (l.t("Collectivité", "Tenant"), text(&view["tenant"])),
        (l.t("Facture", "Invoice"), text(&view["invoice"])),
        (
            l.t("Type de message", "Message type"),
            text(&view["message_type"]),
        ),
        (l.t("Mis de côté le", "Parked at"), text(&view["parked_at"])),
        (l.t("Résolu le", "Resolved at"), text(&view["resolved_at"])),
        (l.t("Résolu par", "Resolved by"), text(&view["resolved_by"])),
        (l.t("Motif", "Reason"), text(&view["resolution_reason"])),
    ]));
    body.push_str(&format!(
        "<h2>{}</h2><ol class=\"timeline\">",
        l.t("Historique des échecs", "Failure history")
    ));
    for event in view["history"].as_array().into_iter().flatten() {
        body.push_str(&format!(
            "<li><time>{}</time> {}</li>",
            text(&event["at"]),
            text(&event["event"])
        ));
    }
    body.push_str("</ol>");
    let action_rows: Vec<Vec<String>> = actions
        .iter()
        .map(|a| {
            vec![
                esc(&a.at),
                esc(&a.action),
                esc(&a.by),
                esc(a.reason.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    body.push_str(&table(
        l.t("Actions", "Actions"),
        &[
            l.t("Quand", "When"),
            l.t("Action", "Action"),
            l.t("Par", "By"),
            l.t("Motif", "Reason"),
        ],
        &action_rows,
    ));
    body.push_str(&format!(
        "<h2>{}</h2><pre>{}</pre>",
        l.t(
            "Contenu (données personnelles masquées)",
            "Body (personal data masked)"
        ),
        esc(&serde_json::to_string_pretty(&view["body"]).unwrap_or_default())
    ));
    if message.summary.state == ParkedState::Parked && ctx.session.is_ops() {
        body.push_str(&format!(
            "<h2>{}</h2>\
             <form method=\"post\" action=\"/parked/{id}/replay\">{csrf}<button type=\"submit\">{replay}</button></form>\
             <form method=\"post\" action=\"/parked/{id}/discard\">{csrf}\
             <label for=\"reason\">{reason}</label><input id=\"reason\" name=\"reason\" required size=\"60\">\
             <p><button type=\"submit\">{discard}</button></p></form>",
            l.t("Décider", "Decide"),
            csrf = csrf_field(&ctx.session),
            replay = l.t("Rejouer vers l'étape", "Replay to its stage"),
            reason = l.t("Motif de la mise à l'écart (obligatoire)", "Reason for discarding (required)"),
            discard = l.t("Écarter", "Discard"),
        ));
    }
    ctx.page(&format!("{} {id}", l.t("Message", "Message")), &body)
}

/// The ids a request acts on, each visible to the user; refuses unknown or hidden ids.
async fn visible_ids(console: &Console, ctx: &Ctx, filter: Filter) -> Result<Vec<i64>, Page> {
    let tenants: Vec<String> = if ctx.session.tenants.is_empty() {
        vec![]
    } else {
        console
            .visible_tenants(ctx)
            .iter()
            .map(|t| t.id.clone())
            .collect()
    };
    let found = console
        .ledger
        .inspect(move |tx| {
            if tenants.is_empty() {
                return tx.parked_ids(&filter);
            }
            let mut ids = Vec::new();
            for t in tenants {
                if filter.tenant.as_ref().is_some_and(|f| *f != t) {
                    continue;
                }
                ids.extend(tx.parked_ids(&Filter {
                    tenant: Some(t),
                    ..filter.clone()
                })?);
            }
            Ok(ids)
        })
        .await;
    found.map_err(|e| ctx.ledger_error(&e))
}

fn summary_of(ctx: &Ctx, outcomes: &[Outcome]) -> String {
    let l = ctx.lang;
    let done = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Replayed { .. } | Outcome::Discarded { .. }))
        .count();
    let already = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::AlreadyResolved { .. }))
        .count();
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed { id, error } => Some(format!("{id}: {error}")),
            Outcome::NotFound { id } => Some(format!("{id}: {}", l.t("inconnu", "unknown"))),
            _ => None,
        })
        .collect();
    let mut text = format!(
        "{done} {}, {already} {}",
        l.t("traité(s)", "done"),
        l.t("déjà résolu(s)", "already resolved")
    );
    if !failed.is_empty() {
        text.push_str(&format!(
            ", {} {}",
            l.t("échecs :", "failed:"),
            failed.join("; ")
        ));
    }
    text
}

enum Act {
    Replay,
    Discard(String),
}

async fn act(
    console: &Console,
    ctx: &Ctx,
    ids: Vec<i64>,
    act: &Act,
) -> Result<Vec<Outcome>, String> {
    let by = format!("console:{}", ctx.session.user);
    match act {
        Act::Discard(reason) => replay::discard(&console.ledger, ids, &by, reason)
            .await
            .map_err(|e| e.to_string()),
        Act::Replay => {
            let replayer = Replayer::connect(&console.runtime)
                .await
                .map_err(|e| e.to_string())?;
            let outcomes = replayer.replay(&console.ledger, &ids, &by).await;
            replayer.close().await;
            Ok(outcomes)
        }
    }
}

fn act_of(ctx: &Ctx, form: &HashMap<String, String>, discard: bool) -> Result<Act, Page> {
    if !discard {
        return Ok(Act::Replay);
    }
    match param(form, "reason") {
        Some(reason) => Ok(Act::Discard(reason.to_string())),
        None => Err(ctx.error(
            StatusCode::BAD_REQUEST,
            ctx.lang.t(
                "Un motif est obligatoire pour écarter un message : il est conservé pour l'audit.",
                "A reason is required to discard: it is kept for audit.",
            ),
        )),
    }
}

async fn one(
    console: Arc<Console>,
    ctx: Ctx,
    id: i64,
    form: HashMap<String, String>,
    discard: bool,
) -> Response {
    if let Err(page) = ctx.check_form(&form, true) {
        return page.into_response();
    }
    let what = match act_of(&ctx, &form, discard) {
        Ok(what) => what,
        Err(page) => return page.into_response(),
    };
    let tenant = console
        .ledger
        .inspect(move |tx| {
            Ok::<_, encaisse_ledger::LedgerError>(tx.parked(id)?.map(|m| m.summary.tenant))
        })
        .await;
    let ids = match tenant {
        Ok(Some(t)) if visible(&ctx, t.as_deref()) => vec![id],
        Ok(_) => {
            return ctx
                .error(
                    StatusCode::NOT_FOUND,
                    ctx.lang.t("Message inconnu.", "No such message."),
                )
                .into_response();
        }
        Err(e) => return ctx.ledger_error(&e).into_response(),
    };
    finish(
        &console,
        &ctx,
        ids,
        what,
        id.to_string(),
        format!("/parked/{id}"),
    )
    .await
}

async fn finish(
    console: &Console,
    ctx: &Ctx,
    ids: Vec<i64>,
    what: Act,
    target: String,
    back: String,
) -> Response {
    let (action, reason) = match &what {
        Act::Replay => ("replay", None),
        Act::Discard(r) => ("discard", Some(r.clone())),
    };
    let result = act(console, ctx, ids, &what).await;
    let outcome = match &result {
        Ok(outcomes) => summary_of(ctx, outcomes),
        Err(e) => format!("{} {e}", ctx.lang.t("échec :", "failed:")),
    };
    let mut entry = ctx.entry(action, outcome.clone()).target(target);
    if let Some(r) = reason {
        entry = entry.reason(r);
    }
    crate::console::audit::record(&console.ledger, entry).await;
    if result.is_err() {
        return ctx
            .error(StatusCode::SERVICE_UNAVAILABLE, &outcome)
            .into_response();
    }
    let sep = if back.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{back}{sep}notice={}",
        url::form_urlencoded::byte_serialize(outcome.as_bytes()).collect::<String>()
    ))
    .into_response()
}

pub async fn replay(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    one(console, ctx, id, form, false).await
}

pub async fn discard(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    one(console, ctx, id, form, true).await
}

async fn group(
    console: Arc<Console>,
    ctx: Ctx,
    form: HashMap<String, String>,
    discard: bool,
) -> Response {
    if let Err(page) = ctx.check_form(&form, true) {
        return page.into_response();
    }
    let what = match act_of(&ctx, &form, discard) {
        Ok(what) => what,
        Err(page) => return page.into_response(),
    };
    let key = match param(&form, "group").map(GroupKey::parse) {
        Some(Ok(key)) => key,
        Some(Err(message)) => return ctx.error(StatusCode::BAD_REQUEST, &message).into_response(),
        None => return ctx.error(StatusCode::BAD_REQUEST, "group?").into_response(),
    };
    let filter = Filter {
        group: Some(key.clone()),
        tenant: param(&form, "tenant").map(str::to_string),
        ..Filter::parked()
    };
    let ids = match visible_ids(&console, &ctx, filter).await {
        Ok(ids) => ids,
        Err(page) => return page.into_response(),
    };
    finish(&console, &ctx, ids, what, key.key(), "/parked".to_string()).await
}

pub async fn replay_group(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    group(console, ctx, form, false).await
}

pub async fn discard_group(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    group(console, ctx, form, true).await
}
