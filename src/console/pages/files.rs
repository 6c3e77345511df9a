//! `GET /files`: every file emitted (PES Aller, pain.008, REGLEMENTS, reports) with its fate
//! (the Trésorerie's acquit for a PES), and every file received (acquits, PES Retour, bank
//! files) as read or rejected; ops may download an emitted file (audited).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use encaisse_ledger::{LedgerError, Tx};

use super::{PAGE_SIZE, page_number};
use crate::console::html::{Lang, esc, pager, table, url_part};
use crate::console::{Console, Ctx, Page};

struct Emitted {
    id: i64,
    tenant: String,
    kind: String,
    path: String,
    bytes: i64,
    written_at: String,
    /// Acquit states of a PES Aller's bordereaux (`accepted`, `rejected`; empty: waiting).
    fate: Option<String>,
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn emitted(
    tx: &mut Tx<'_>,
    tenant: &str,
    limit: u32,
    offset: u32,
) -> Result<Vec<Emitted>, LedgerError> {
    let mut files: Vec<Emitted> = tx.query_all(
        "SELECT id, tenant, kind, path, bytes, written_at FROM emitted_file
         WHERE tenant = ?1 ORDER BY written_at DESC, id DESC LIMIT ?2 OFFSET ?3",
        &[&tenant, &limit, &offset],
        |r| {
            Ok(Emitted {
                id: r.get(0)?,
                tenant: r.get(1)?,
                kind: r.get(2)?,
                path: r.get(3)?,
                bytes: r.get(4)?,
                written_at: r.get(5)?,
                fate: None,
            })
        },
    )?;
    for f in files.iter_mut().filter(|f| f.kind == "pes_aller") {
        // `string_agg`: SQLite (3.44+) and PostgreSQL both have it.
        f.fate = tx
            .query_opt(
                "SELECT string_agg(coalesce(b.ack_state, 'waiting'), ', ')
                 FROM helios_file f JOIN helios_bordereau b ON b.file_id = f.id
                 WHERE f.tenant = ?1 AND f.file_name = ?2",
                &[&f.tenant, &file_name(&f.path)],
                |r| r.get::<Option<String>>(0),
            )?
            .flatten();
    }
    Ok(files)
}

struct Received {
    name: String,
    kind: String,
    at: String,
    fate: String,
}

fn received(tx: &mut Tx<'_>, tenant: &str, limit: u32) -> Result<Vec<Received>, LedgerError> {
    let mut out = tx.query_all(
        "SELECT name, kind, handled_at, events, unmatched FROM helios_return_file
         WHERE tenant = ?1 ORDER BY handled_at DESC LIMIT ?2",
        &[&tenant, &limit],
        |r| {
            let (events, unmatched): (i64, i64) = (r.get(3)?, r.get(4)?);
            Ok(Received {
                name: r.get(0)?,
                kind: r.get(1)?,
                at: r.get(2)?,
                fate: format!("read: {events} event(s), {unmatched} unmatched"),
            })
        },
    )?;
    out.extend(tx.query_all(
        "SELECT file, count(*),
             CAST(sum(CASE WHEN outcome = 'unmatched' THEN 1 ELSE 0 END) AS BIGINT),
             max(recorded_at)
         FROM sepa_return_record
         WHERE tenant = ?1 GROUP BY file ORDER BY max(recorded_at) DESC LIMIT ?2",
        &[&tenant, &limit],
        |r| {
            let (records, unmatched): (i64, i64) = (r.get(1)?, r.get(2)?);
            Ok(Received {
                name: r.get(0)?,
                kind: "bank".into(),
                at: r.get(3)?,
                fate: format!("read: {records} record(s), {unmatched} unmatched"),
            })
        },
    )?);
    Ok(out)
}

/// Files set aside in a tenant's `rejected` folders (unreadable or refused whole).
fn rejected(data_dir: &std::path::Path, tenant: &str) -> Vec<Received> {
    let mut out = Vec::new();
    for area in ["polyfac", "helios", "bank"] {
        let dir = data_dir.join(tenant).join(area).join("rejected");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let at = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| {
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
                .unwrap_or_default();
            out.push(Received {
                name,
                kind: area.to_string(),
                at,
                fate: "rejected".into(),
            });
        }
    }
    out
}

fn fate_text(l: Lang, fate: &str) -> String {
    let words = fate
        .split(", ")
        .map(|f| match f {
            "accepted" => l.t("acquit OK", "acquit OK"),
            "rejected" => l.t("acquit KO", "acquit KO"),
            "waiting" => l.t("en attente d'acquit", "awaiting acquit"),
            other => other,
        })
        .collect::<Vec<_>>()
        .join(", ");
    esc(&words)
}

pub async fn list(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Query(params): Query<HashMap<String, String>>,
) -> Page {
    let l = ctx.lang;
    let Some(tenant) = super::chosen_tenant(&console, &ctx, &params) else {
        return ctx.page(
            l.t("Fichiers", "Files"),
            l.t("Aucune collectivité.", "No tenant."),
        );
    };
    let page = page_number(&params);
    let t = tenant.clone();
    let found = console
        .ledger
        .inspect(move |tx| {
            Ok::<_, LedgerError>((
                emitted(tx, &t, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)?,
                received(tx, &t, PAGE_SIZE)?,
            ))
        })
        .await;
    let (out, mut inbound) = match found {
        Ok(found) => found,
        Err(e) => return ctx.ledger_error(&e),
    };
    let (data_dir, t) = (console.data_dir.clone(), tenant.clone());
    inbound.extend(
        tokio::task::spawn_blocking(move || rejected(&data_dir, &t))
            .await
            .unwrap_or_default(),
    );
    inbound.sort_by(|a, b| b.at.cmp(&a.at));
    let options = super::tenant_options(&console, &ctx);
    let mut body = format!(
        "<form method=\"get\" action=\"/files\" class=\"filters\">{}<div><button type=\"submit\">{}</button></div></form>",
        super::select(
            "tenant",
            l.t("Collectivité", "Tenant"),
            &options,
            Some(&tenant)
        ),
        l.t("Afficher", "Show"),
    );
    let has_next = out.len() > PAGE_SIZE as usize;
    let rows: Vec<Vec<String>> = out
        .iter()
        .take(PAGE_SIZE as usize)
        .map(|f| {
            let name = if ctx.session.is_ops() {
                format!(
                    "<a href=\"/files/{}/download\">{}</a>",
                    f.id,
                    esc(file_name(&f.path))
                )
            } else {
                esc(file_name(&f.path))
            };
            vec![
                name,
                esc(&f.kind),
                f.bytes.to_string(),
                esc(&f.written_at),
                f.fate
                    .as_deref()
                    .map(|x| fate_text(l, x))
                    .unwrap_or_else(|| {
                        if f.kind == "pes_aller" {
                            fate_text(l, "waiting")
                        } else {
                            l.t("écrit", "written").to_string()
                        }
                    }),
            ]
        })
        .collect();
    body.push_str(&table(
        l.t("Fichiers émis", "Files emitted"),
        &[
            l.t("Fichier", "File"),
            l.t("Type", "Kind"),
            l.t("Octets", "Bytes"),
            l.t("Écrit le", "Written at"),
            l.t("Devenir", "Fate"),
        ],
        &rows,
    ));
    body.push_str(&pager(
        l,
        &format!("/files?tenant={}&amp;", url_part(&tenant)),
        page,
        has_next,
    ));
    let rows: Vec<Vec<String>> = inbound
        .iter()
        .map(|f| {
            let fate = if f.fate == "rejected" {
                format!("<span class=\"bad\">{}</span>", l.t("rejeté", "rejected"))
            } else {
                esc(&f.fate.replacen("read", l.t("lu", "read"), 1))
            };
            vec![esc(&f.name), esc(&f.kind), esc(&f.at), fate]
        })
        .collect();
    body.push_str(&table(
        l.t("Fichiers reçus", "Files received"),
        &[
            l.t("Fichier", "File"),
            l.t("Type", "Kind"),
            l.t("Traité le", "Handled at"),
            l.t("Devenir", "Fate"),
        ],
        &rows,
    ));
    ctx.page(l.t("Fichiers", "Files"), &body)
}

/// `GET /files/{id}/download` (ops): the emitted file's bytes, if it is still under the data
/// directory.
pub async fn download(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    Path(id): Path<i64>,
) -> Response {
    let l = ctx.lang;
    if !ctx.session.is_ops() {
        return ctx
            .error(
                StatusCode::FORBIDDEN,
                l.t(
                    "Réservé à l'exploitation (rôle ops).",
                    "Only operations staff (role ops) may download.",
                ),
            )
            .into_response();
    }
    let row = console
        .ledger
        .inspect(move |tx| {
            tx.query_opt(
                "SELECT tenant, path FROM emitted_file WHERE id = ?1",
                &[&id],
                |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
            )
        })
        .await;
    let (tenant, path) = match row {
        Ok(Some(row)) if ctx.session.sees(&row.0) => row,
        Ok(_) => {
            return ctx
                .error(
                    StatusCode::NOT_FOUND,
                    l.t("Fichier inconnu.", "No such file."),
                )
                .into_response();
        }
        Err(e) => return ctx.ledger_error(&e).into_response(),
    };
    let data_dir = console.data_dir.clone();
    let p = path.clone();
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let root = data_dir.canonicalize().map_err(|e| e.to_string())?;
        let candidate = PathBuf::from(&p);
        let full = if candidate.is_absolute() {
            candidate
        } else {
            data_dir.join(candidate)
        };
        let full = full.canonicalize().map_err(|e| e.to_string())?;
        if !full.starts_with(&root) {
            return Err("outside the data directory".into());
        }
        std::fs::read(full).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let outcome = match &bytes {
        Ok(b) => format!("{} bytes", b.len()),
        Err(e) => format!("failed: {e}"),
    };
    crate::console::audit::record(
        &console.ledger,
        ctx.entry("download", outcome)
            .target(format!("{tenant}:{path}")),
    )
    .await;
    match bytes {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}\"",
                        file_name(&path).replace(['"', '\\'], "_")
                    ),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => ctx
            .error(
                StatusCode::GONE,
                l.t(
                    "Le fichier n'est plus lisible sur le disque.",
                    "The file can no longer be read from disk.",
                ),
            )
            .into_response(),
    }
}
