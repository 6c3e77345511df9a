//! `GET /invoices?q=`: find invoices by number, family code or payer name (names are matched,
//! never shown); `GET /invoices/{tenant}/{exercice}/{number}`: the trace of one invoice as a
//! timeline, from the same query as `encaisse trace`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_pipelines::stages::ops::trace;

use super::{PAGE_SIZE, input, page_number, param};
use crate::console::html::{Lang, esc, euros, pager, table, url_part};
use crate::console::{Console, Ctx, Page};

/// One invoice as listed.
struct Found {
    key: String,
    budget: String,
    total_cents: i64,
    published_at: String,
}

fn found(r: &encaisse_ledger::sql::Row<'_>) -> Result<Found, LedgerError> {
    Ok(Found {
        key: r.get(0)?,
        budget: r.get(1)?,
        total_cents: r.get(2)?,
        published_at: r.get(3)?,
    })
}

fn issued(tx: &mut Tx<'_>, tenant: &str, key: &str) -> Result<Option<Found>, LedgerError> {
    tx.query_opt(
        "SELECT invoice_key, budget, total_cents, published_at FROM polyfac_issued
         WHERE tenant = ?1 AND invoice_key = ?2",
        &[&tenant, &key],
        found,
    )
}

/// Invoices by family code.
const BY_FAMILY_SQL: &str = "SELECT invoice_key FROM polyfac_export_invoice
     WHERE family_code = ?1 AND tenant = ?2 LIMIT 200";

/// Invoices whose payer's last name starts with a search key (`[?2, ?3)`).
const BY_NAME_SQL: &str = "SELECT invoice_key FROM invoice_payer_name
     WHERE tenant = ?1 AND name_key >= ?2 AND name_key < ?3 LIMIT 200";

/// The latest invoices of a tenant, a page of them.
const LATEST_SQL: &str = "SELECT invoice_key, budget, total_cents, published_at FROM polyfac_issued
     WHERE tenant = ?1 ORDER BY published_at DESC LIMIT ?2 OFFSET ?3";

/// Keys matching `q` in `tenant`: as a number of any exercice (exact key look-ups, one per
/// exercice the tenant has exported), a family code, or the start of a payer's last name
/// (accents and case folded) — each through an index.
fn find_keys(tx: &mut Tx<'_>, tenant: &str, q: &str) -> Result<BTreeSet<String>, LedgerError> {
    let mut keys = BTreeSet::new();
    if q.contains('/') {
        keys.extend(trace::candidates(tx, q, Some(tenant))?);
    }
    let exercices: Vec<i64> = tx.query_all(
        "SELECT DISTINCT exercice FROM polyfac_run WHERE tenant = ?1",
        &[&tenant],
        |r| r.get(0),
    )?;
    for exercice in exercices {
        let key = format!("{tenant}/{exercice}/{q}");
        if issued(tx, tenant, &key)?.is_some() {
            keys.insert(key);
        }
    }
    keys.extend(tx.query_all(BY_FAMILY_SQL, &[&q, &tenant], |r| r.get::<String>(0))?);
    if q.chars().count() >= 2 && !q.chars().any(|ch| ch.is_ascii_digit()) {
        // The folded key, and the name lower-cased as SQLite does (ASCII only): the keys of
        // invoices recorded before the ledger kept folded names.
        let folded = encaisse_schemas::text::search_key(q);
        let lowered = q.trim().to_ascii_lowercase();
        for prefix in BTreeSet::from([folded, lowered]) {
            if prefix.is_empty() {
                continue;
            }
            // Every key that starts with `prefix` sorts before `prefix` + the last code point.
            let end = format!("{prefix}\u{10FFFF}");
            keys.extend(tx.query_all(BY_NAME_SQL, &[&tenant, &prefix, &end], |r| {
                r.get::<String>(0)
            })?);
        }
    }
    Ok(keys)
}

fn latest(
    tx: &mut Tx<'_>,
    tenant: &str,
    limit: u32,
    offset: u32,
) -> Result<Vec<Found>, LedgerError> {
    tx.query_all(LATEST_SQL, &[&tenant, &limit, &offset], found)
}

fn invoice_link(key: &str) -> String {
    let href: Vec<String> = key.splitn(3, '/').map(url_part).collect();
    format!("<a href=\"/invoices/{}\">{}</a>", href.join("/"), esc(key))
}

pub async fn search_page(console: &Console, ctx: &Ctx, params: &HashMap<String, String>) -> Page {
    let l = ctx.lang;
    let tenant = super::chosen_tenant(console, ctx, params);
    let Some(tenant) = tenant else {
        return ctx.page(
            l.t("Factures", "Invoices"),
            l.t("Aucune collectivité.", "No tenant."),
        );
    };
    let q = param(params, "q").map(str::to_string);
    let page = page_number(params);
    let (t, query) = (tenant.clone(), q.clone());
    let found = console
        .ledger
        .inspect(move |tx| match query {
            Some(q) => {
                let keys = find_keys(tx, &t, &q)?;
                let mut out = Vec::new();
                for key in keys {
                    out.push(issued(tx, &t, &key)?.unwrap_or(Found {
                        key,
                        budget: "?".into(),
                        total_cents: 0,
                        published_at: String::new(),
                    }));
                }
                Ok(out)
            }
            None => latest(tx, &t, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE),
        })
        .await;
    let found = match found {
        Ok(found) => found,
        Err(e) => return ctx.ledger_error(&e),
    };
    let options = super::tenant_options(console, ctx);
    let mut body = format!(
        "<form method=\"get\" action=\"/invoices\" class=\"filters\" role=\"search\">{}{}<div><button type=\"submit\">{}</button></div></form>",
        super::select(
            "tenant",
            l.t("Collectivité", "Tenant"),
            &options,
            Some(&tenant)
        ),
        input(
            "q",
            l.t("Numéro, code famille ou nom", "Number, family code or name"),
            q.as_deref()
        ),
        l.t("Chercher", "Search"),
    );
    let has_next = q.is_none() && found.len() > PAGE_SIZE as usize;
    let rows: Vec<Vec<String>> = found
        .iter()
        .take(PAGE_SIZE as usize)
        .map(|f| {
            vec![
                invoice_link(&f.key),
                esc(&f.budget),
                format!("<span class=\"num\">{}</span>", euros(l, f.total_cents)),
                esc(&f.published_at),
            ]
        })
        .collect();
    let caption = if q.is_some() {
        l.t("Résultats", "Results")
    } else {
        l.t("Dernières factures", "Latest invoices")
    };
    body.push_str(&table(
        caption,
        &[
            l.t("Facture", "Invoice"),
            l.t("Budget", "Budget"),
            l.t("Montant", "Amount"),
            l.t("Publiée le", "Published at"),
        ],
        &rows,
    ));
    if q.is_none() {
        body.push_str(&pager(
            l,
            &format!("/invoices?tenant={}&amp;", url_part(&tenant)),
            page,
            has_next,
        ));
    }
    ctx.page(l.t("Factures", "Invoices"), &body)
}

pub async fn search(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    search_page(&console, &ctx, &params).await
}

pub async fn timeline(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Path((tenant, exercice, number)): Path<(String, String, String)>,
) -> Page {
    let l = ctx.lang;
    let unknown = l.t("Facture inconnue.", "No such invoice.");
    if !ctx.session.sees(&tenant) || !console.tenants.iter().any(|t| t.id == tenant) {
        return ctx.error(StatusCode::NOT_FOUND, unknown);
    }
    let key = format!("{tenant}/{exercice}/{number}");
    let k = key.clone();
    let traced = match console.ledger.inspect(move |tx| trace::trace(tx, &k)).await {
        Ok(traced) => traced,
        Err(e) => return ctx.ledger_error(&e),
    };
    if traced.steps.is_empty() {
        return ctx.error(StatusCode::NOT_FOUND, unknown);
    }
    let mut body = format!(
        "<ol class=\"timeline\" aria-label=\"{}\">",
        l.t("Chronologie", "Timeline")
    );
    let language = match l {
        Lang::Fr => trace::Language::French,
        Lang::En => trace::Language::English,
    };
    for step in &traced.steps {
        body.push_str(&format!(
            "<li class=\"{}\" data-kind=\"{}\"><time datetime=\"{at}\">{at}</time>{} — {}</li>",
            esc(step.source),
            esc(&step.kind),
            step.stage
                .as_deref()
                .map(|s| format!(" <span class=\"stage\">({})</span>", esc(s)))
                .unwrap_or_default(),
            esc(&trace::phrase(step, language)),
            at = esc(&step.at),
        ));
    }
    body.push_str("</ol>");
    let file_rows: Vec<Vec<String>> = traced
        .files
        .iter()
        .map(|f| {
            vec![
                esc(&f.kind),
                esc(&f.path),
                f.bytes.to_string(),
                esc(&f.written_at),
            ]
        })
        .collect();
    body.push_str(&table(
        l.t("Fichiers", "Files"),
        &[
            l.t("Type", "Kind"),
            l.t("Chemin", "Path"),
            l.t("Octets", "Bytes"),
            l.t("Écrit le", "Written at"),
        ],
        &file_rows,
    ));
    let parked_rows: Vec<Vec<String>> = traced
        .parked
        .iter()
        .map(|p| {
            vec![
                format!("<a href=\"/parked/{}\">{}</a>", p.id, p.id),
                esc(&p.group),
                esc(p.state.as_str()),
                esc(&p.error),
            ]
        })
        .collect();
    body.push_str(&table(
        l.t("Messages mis de côté", "Parked messages"),
        &[
            "ID",
            l.t("Groupe", "Group"),
            l.t("État", "State"),
            l.t("Erreur", "Error"),
        ],
        &parked_rows,
    ));
    ctx.page(&format!("{} {key}", l.t("Facture", "Invoice")), &body)
}

#[cfg(test)]
mod tests {
    use encaisse_ledger::plan::unindexed_steps;

    use super::*;
    use encaisse_ledger::rusqlite;

    fn ledger() -> (tempfile::TempDir, encaisse_ledger::Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = encaisse_ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
        (dir, ledger)
    }

    /// The search reads through indexes, whatever the number of invoices.
    #[test]
    fn every_query_uses_indexes() {
        let (_dir, ledger) = ledger();
        ledger
            .read_blocking(|c| {
                let checks = [
                    (BY_FAMILY_SQL, unindexed_steps(c, BY_FAMILY_SQL, ["F1", "vitry"])?),
                    (
                        BY_NAME_SQL,
                        unindexed_steps(c, BY_NAME_SQL, ["vitry", "dur", "dur\u{10FFFF}"])?,
                    ),
                ];
                for (sql, bad) in checks {
                    assert!(bad.is_empty(), "{sql}\n{bad:#?}");
                }
                // The latest: all of the tenant's invoices, but read in the index's order
                // (no sort), so the LIMIT stops after a page.
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {LATEST_SQL}"))?;
                let plan: Vec<String> = stmt
                    .query_map(rusqlite::params!["vitry", 51, 0], |r| r.get(3))?
                    .collect::<Result<_, _>>()?;
                assert_eq!(
                    plan,
                    [
                        "SEARCH polyfac_issued USING COVERING INDEX polyfac_issued_published (tenant=?)"
                    ]
                );
                Ok(())
            })
            .unwrap();
    }

    /// A name is found by its start, whatever its case and accents, in its tenant only.
    #[tokio::test]
    async fn names_are_found_by_their_folded_start() {
        let (_dir, ledger) = ledger();
        ledger
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO invoice_payer_name (tenant, name_key, invoice_key) VALUES
                       ('vitry', 'helene', 'vitry/2026/F1'),
                       ('vitry', 'hel', 'vitry/2026/F2'),
                       ('vitry', 'he', 'vitry/2026/F3'),
                       ('ivry', 'helene', 'ivry/2026/F1');",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        ledger
            .inspect(|tx| {
                let found = find_keys(tx, "vitry", "HÉL")?;
                assert_eq!(
                    found.into_iter().collect::<Vec<_>>(),
                    ["vitry/2026/F1", "vitry/2026/F2"]
                );
                assert!(find_keys(tx, "vitry", "Hélènes")?.is_empty());
                Ok::<_, LedgerError>(())
            })
            .await
            .unwrap();
    }
}
