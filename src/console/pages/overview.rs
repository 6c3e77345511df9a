//! `GET /`: is everything flowing? Broker and ledger health, parked messages by group, each
//! inbox's oldest file, the last PES / pain.008 / REGLEMENTS per tenant, and the alerts that
//! would fire.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use encaisse_ledger::{CoreStore, OpsStore};
use encaisse_pipelines::runtime::BrokerState;
use encaisse_pipelines::stages::ops::store::Filter;

use crate::console::html::{esc, table, url_part};
use crate::console::{Console, Ctx, Page};

/// An inbox file older than this is an alert (the watchers pick files up within seconds).
const INBOX_ALERT_AGE: Duration = Duration::from_secs(15 * 60);

/// The file kinds whose last emission the page shows.
const LAST_KINDS: [&str; 3] = ["pes_aller", "pain008", "reglements"];

/// The oldest regular file of `dir`, with its age.
fn oldest_file(dir: &Path) -> Option<(String, Duration)> {
    let now = SystemTime::now();
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                now.duration_since(modified).unwrap_or_default(),
            ))
        })
        .max_by_key(|(_, age)| *age)
}

fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

pub async fn page(State(console): State<Arc<Console>>, ctx: Ctx) -> Page {
    let l = ctx.lang;
    let mut alerts: Vec<String> = Vec::new();

    let broker = console.health.state();
    let broker_text = match broker {
        BrokerState::Connected => l.t("connecté", "connected"),
        BrokerState::Connecting => l.t("connexion en cours", "connecting"),
        BrokerState::Blocked => l.t(
            "bloqué (alarme mémoire ou disque)",
            "blocked (memory or disk alarm)",
        ),
        BrokerState::Disconnected => l.t("déconnecté (reconnexion)", "disconnected (reconnecting)"),
    };
    if broker != BrokerState::Connected {
        alerts.push(format!(
            "{} {broker_text}",
            l.t("Courtier RabbitMQ :", "RabbitMQ broker:")
        ));
    }

    let tenants: Vec<String> = console
        .visible_tenants(&ctx)
        .iter()
        .map(|t| t.id.clone())
        .collect();
    let restricted = !ctx.session.tenants.is_empty();
    let read_tenants = tenants.clone();
    let read = console
        .ledger
        .inspect(move |tx| {
            let mut groups = Vec::new();
            if restricted {
                for t in &read_tenants {
                    let filter = Filter {
                        tenant: Some(t.clone()),
                        ..Filter::parked()
                    };
                    groups.extend(tx.parked_groups(&filter)?);
                }
            } else {
                groups = tx.parked_groups(&Filter::parked())?;
            }
            let written = tx.last_written()?;
            let mut last = Vec::new();
            for t in &read_tenants {
                for kind in LAST_KINDS {
                    let at = written
                        .iter()
                        .find(|(tenant, k, _)| tenant == t && k == kind)
                        .map(|(_, _, at)| at.clone());
                    last.push((t.clone(), kind, at));
                }
            }
            Ok::<_, encaisse_ledger::LedgerError>((groups, last))
        })
        .await;
    let ledger_ok = read.is_ok();
    let (groups, last) = match read {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "Console: the ledger does not answer.");
            alerts.push(
                l.t("Le registre ne répond pas.", "The ledger does not answer.")
                    .to_string(),
            );
            (Vec::new(), Vec::new())
        }
    };
    let waiting: i64 = groups.iter().map(|g| g.count).sum();
    if waiting > 0 {
        alerts.push(format!(
            "{waiting} {}",
            l.t(
                "message(s) en attente d'une décision.",
                "message(s) parked, waiting for a decision."
            )
        ));
    }

    let depths = console.queue_depths().await;
    if let Err(e) = &depths {
        alerts.push(format!(
            "{} {e}",
            l.t(
                "Profondeur des files indisponible :",
                "Queue depths unavailable:"
            )
        ));
    }

    let data_dir = console.data_dir.clone();
    let inbox_tenants = tenants.clone();
    let inboxes = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for t in &inbox_tenants {
            for area in ["polyfac", "helios", "bank"] {
                let dir = data_dir.join(t).join(area).join("inbox");
                found.push((t.clone(), area, oldest_file(&dir)));
            }
        }
        found
    })
    .await
    .unwrap_or_default();
    for (t, area, oldest) in &inboxes {
        if let Some((name, age)) = oldest
            && *age > INBOX_ALERT_AGE
        {
            alerts.push(format!(
                "{} {t}/{area}/inbox : {name} ({})",
                l.t(
                    "Fichier non traité depuis longtemps dans",
                    "File waiting for long in"
                ),
                age_text(*age)
            ));
        }
    }

    let mut body = String::new();
    body.push_str(&format!("<h2>{}</h2>", l.t("Alertes", "Alerts")));
    if alerts.is_empty() {
        body.push_str(&format!(
            "<p class=\"ok\">{}</p>",
            l.t("Aucune alerte.", "No alert.")
        ));
    } else {
        body.push_str("<ul class=\"bad\">");
        for a in &alerts {
            body.push_str(&format!("<li>{}</li>", esc(a)));
        }
        body.push_str("</ul>");
    }
    body.push_str(&table(
        l.t("Santé", "Health"),
        &[l.t("Composant", "Component"), l.t("État", "State")],
        &[
            vec![
                l.t("Courtier RabbitMQ", "RabbitMQ broker").into(),
                esc(broker_text),
            ],
            vec![
                l.t("Registre", "Ledger").into(),
                if ledger_ok {
                    l.t("lisible", "readable").into()
                } else {
                    format!(
                        "<span class=\"bad\">{}</span>",
                        l.t("illisible", "unreadable")
                    )
                },
            ],
        ],
    ));
    let group_rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                format!(
                    "<a href=\"/parked?view=list&amp;group={}\">{}</a>",
                    url_part(&g.group),
                    esc(&g.group)
                ),
                esc(&g.error_classes.join(", ")),
                format!("<span class=\"num\">{}</span>", g.count),
                esc(&g.tenants.join(", ")),
                esc(&g.oldest_parked_at),
            ]
        })
        .collect();
    body.push_str(&table(
        l.t("Messages en attente par groupe", "Parked messages by group"),
        &[
            l.t("Groupe (étape/erreur)", "Group (stage/error)"),
            l.t("Classe", "Class"),
            l.t("Nombre", "Count"),
            l.t("Collectivités", "Tenants"),
            l.t("Plus ancien", "Oldest"),
        ],
        &group_rows,
    ));
    let depth_rows: Vec<Vec<String>> = depths
        .unwrap_or_default()
        .iter()
        .map(|(queue, ready)| vec![esc(queue), ready.to_string()])
        .collect();
    body.push_str(&table(
        l.t(
            "Files RabbitMQ (messages prêts)",
            "RabbitMQ queues (ready messages)",
        ),
        &[l.t("File", "Queue"), l.t("Messages", "Messages")],
        &depth_rows,
    ));
    let inbox_rows: Vec<Vec<String>> = inboxes
        .iter()
        .map(|(t, area, oldest)| {
            vec![
                esc(t),
                format!("{area}/inbox"),
                match oldest {
                    Some((name, age)) => format!("{} ({})", esc(name), age_text(*age)),
                    None => l.t("vide", "empty").into(),
                },
            ]
        })
        .collect();
    body.push_str(&table(
        l.t(
            "Plus ancien fichier de chaque boîte de dépôt",
            "Oldest file of each inbox",
        ),
        &[
            l.t("Collectivité", "Tenant"),
            l.t("Boîte", "Inbox"),
            l.t("Plus ancien fichier", "Oldest file"),
        ],
        &inbox_rows,
    ));
    let last_rows: Vec<Vec<String>> = last
        .iter()
        .map(|(t, kind, at)| {
            vec![
                esc(t),
                esc(kind),
                esc(at.as_deref().unwrap_or(l.t("jamais", "never"))),
            ]
        })
        .collect();
    body.push_str(&table(
        l.t("Derniers fichiers émis", "Last files emitted"),
        &[
            l.t("Collectivité", "Tenant"),
            l.t("Type", "Kind"),
            l.t("Écrit le (UTC)", "Written at (UTC)"),
        ],
        &last_rows,
    ));
    ctx.page(l.t("Vue d'ensemble", "Overview"), &body)
}
