//! `encaisse dlq`: the parked messages, as `ops.parking` stored them in the ledger — list
//! (newest first, filters, `--group` by stage and error kind), show (domain terms, failure
//! history, headers, personal data masked unless `--reveal`), replay (to the stage's work
//! queue, confirmed, idempotent, `--dry-run`) and discard (reason mandatory, audited).
//! `--json` on every subcommand. Works without the daemon (replay needs the broker).
//!
//! Exit codes: 0 done; 1 some replays failed (broker refused, queue missing); 2 bad command
//! line (a discard without a reason too); 66 an ID not in the store; 69 broker unreachable
//! (replay); 74 ledger missing or unreadable; 78 configuration unusable.

use std::io::Write;
use std::path::Path;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use encaisse_ledger::{Ledger, OpsStore};
use encaisse_pipelines::stages::ops::replay::{self, Outcome, Replayer};
use encaisse_pipelines::stages::ops::show;
use encaisse_pipelines::stages::ops::since::{parse_since_now, short_time};
use encaisse_pipelines::stages::ops::store::{Filter, GroupKey, State};
use serde_json::Value;

use super::dlq_table::{Table, actor, codes, open, or_dash, write_json};

/// `encaisse dlq …`
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Parked messages, newest first (or `--group`ed by stage and error kind, largest first).
    List(ListArgs),
    /// One parked message in domain terms: why it failed, its history, headers and body.
    Show(ShowArgs),
    /// Republish parked messages to the stage that failed (fresh attempts, confirmed).
    Replay(ReplayArgs),
    /// Set parked messages aside for good, with a reason kept for audit.
    Discard(DiscardArgs),
}

/// Which messages: shared by `list` and `replay`.
#[derive(Debug, Args, Default)]
pub struct Selection {
    /// Only this tenant's messages.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only messages parked by this stage (`helios.titres`).
    #[arg(long)]
    pub stage: Option<String>,
    /// Only this error class: transient, permanent, poison.
    #[arg(long)]
    pub class: Option<String>,
    /// Only messages parked since: RFC 3339, a day (YYYY-MM-DD, Paris), or 30m, 2h, 3d, 1w.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
}

/// `--state` of `dlq list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    Parked,
    Replayed,
    Discarded,
    All,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Messages in this state (default: still parked).
    #[arg(long, value_enum, default_value_t = StateArg::Parked)]
    pub state: StateArg,
    /// One row per stage and error kind, with counts.
    #[arg(long)]
    pub group: bool,
    /// At most this many rows (newest first).
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The ID `dlq list` shows.
    pub id: i64,
    /// Show personal data (names, addresses, e-mails, IBANs) in clear.
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["ids", "group", "all"])))]
pub struct ReplayArgs {
    /// IDs to replay.
    pub ids: Vec<i64>,
    /// Every parked message of a group, `<stage>/<error kind>` as `dlq list --group` shows it.
    #[arg(long, value_name = "STAGE/KIND")]
    pub group: Option<String>,
    /// Every parked message (narrowed by the filters).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub selection: Selection,
    /// Say what would be replayed; publish nothing, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Who replays (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiscardArgs {
    /// IDs to discard.
    #[arg(required = true)]
    pub ids: Vec<i64>,
    /// Why (mandatory; kept with the message for audit).
    #[arg(long, required = true)]
    pub reason: String,
    /// Who discards (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
}

/// Runs `encaisse dlq`; returns the exit code.
pub async fn run(config: &Path, args: &DlqArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (loaded, ledger) = match open(config, err) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let json = args.json;
    let outcome = match &args.command {
        DlqCommand::List(a) => list(&ledger, a, json, out).await,
        DlqCommand::Show(a) => show(&ledger, a, json, out).await,
        DlqCommand::Replay(a) => replay_cmd(&ledger, &loaded.config.runtime(), a, json, out).await,
        DlqCommand::Discard(a) => discard(&ledger, a, json, out).await,
    };
    match outcome {
        Ok(code) => code,
        Err((code, message)) => {
            let _ = writeln!(err, "encaisse dlq: {message}");
            code
        }
    }
}

type CmdResult = Result<u8, (u8, String)>;

fn ledger_failure(e: impl std::fmt::Display) -> (u8, String) {
    (codes::IO_ERROR, format!("ledger: {e}"))
}

fn filter(selection: &Selection, state: Option<State>) -> Result<Filter, (u8, String)> {
    let since = selection
        .since
        .as_deref()
        .map(parse_since_now)
        .transpose()
        .map_err(|e| (codes::USAGE, e))?;
    Ok(Filter {
        tenant: selection.tenant.clone(),
        stage: selection.stage.clone(),
        class: selection.class.clone(),
        since,
        state,
        ..Filter::default()
    })
}

async fn list(ledger: &Ledger, a: &ListArgs, json: bool, out: &mut dyn Write) -> CmdResult {
    let state = match a.state {
        StateArg::Parked => Some(State::Parked),
        StateArg::Replayed => Some(State::Replayed),
        StateArg::Discarded => Some(State::Discarded),
        StateArg::All => None,
    };
    let f = filter(&a.selection, state)?;
    if a.group {
        let groups = ledger
            .inspect(move |tx| tx.parked_groups(&f))
            .await
            .map_err(ledger_failure)?;
        if json {
            let _ = write_json(out, &groups);
            return Ok(codes::OK);
        }
        let mut table = Table::new(vec![
            "GROUP",
            "CLASS",
            "COUNT",
            "TENANTS",
            "OLDEST (UTC)",
            "NEWEST (UTC)",
            "LAST ERROR",
        ]);
        for g in &groups {
            table.row(vec![
                g.group.clone(),
                g.error_classes.join(","),
                g.count.to_string(),
                g.tenants.join(","),
                short_time(&g.oldest_parked_at),
                short_time(&g.newest_parked_at),
                g.example_error.clone(),
            ]);
        }
        if table.is_empty() {
            let _ = writeln!(out, "No parked messages.");
        } else {
            let _ = table.write(out);
            let total: i64 = groups.iter().map(|g| g.count).sum();
            let _ = writeln!(
                out,
                "\n{total} message(s) in {} group(s). Replay a group: encaisse dlq replay --group <GROUP>",
                groups.len()
            );
        }
        return Ok(codes::OK);
    }
    let limit = a.limit;
    let rows = ledger
        .inspect(move |tx| tx.list_parked(&f, limit.saturating_add(1)))
        .await
        .map_err(ledger_failure)?;
    let more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    if json {
        let _ = write_json(out, &rows);
        return Ok(codes::OK);
    }
    let mut table = Table::new(vec![
        "ID",
        "PARKED AT (UTC)",
        "STAGE",
        "TENANT",
        "CLASS",
        "KIND",
        "ATTEMPTS",
        "INVOICE",
        "STATE",
        "ERROR",
    ]);
    for r in rows {
        table.row(vec![
            r.id.to_string(),
            short_time(&r.parked_at),
            r.stage.clone(),
            or_dash(r.tenant.as_deref()),
            r.error_class.clone(),
            r.error_kind.clone(),
            r.attempts.to_string(),
            or_dash(r.invoice.as_deref()),
            r.state.as_str().to_string(),
            r.error.clone(),
        ]);
    }
    if table.is_empty() {
        let _ = writeln!(out, "No parked messages.");
    } else {
        let _ = table.write(out);
        let _ = writeln!(
            out,
            "\n{} message(s){}. Details: encaisse dlq show ID; replay: encaisse dlq replay ID…",
            rows.len(),
            if more { " (more: raise --limit)" } else { "" }
        );
    }
    Ok(codes::OK)
}

async fn show(ledger: &Ledger, a: &ShowArgs, json: bool, out: &mut dyn Write) -> CmdResult {
    let id = a.id;
    let found = ledger
        .inspect(move |tx| {
            let Some(message) = tx.parked(id)? else {
                return Ok::<_, encaisse_ledger::LedgerError>(None);
            };
            let earlier = tx.earlier_parkings(&message)?;
            let actions = tx.parked_actions(id)?;
            Ok(Some((message, earlier, actions)))
        })
        .await
        .map_err(ledger_failure)?;
    let Some((message, earlier, actions)) = found else {
        return Err((codes::NOT_FOUND, format!("no parked message {id}")));
    };
    if a.reveal {
        tracing::info!(id, by = %actor(None), "Parked message shown with personal data in clear.");
    }
    let view = show::view(&message, &earlier, &actions, a.reveal)
        .map_err(|e| (codes::FAILURE, format!("message {id}: {e}")))?;
    if json {
        let _ = write_json(out, &view);
        return Ok(codes::OK);
    }
    let _ = write_show(out, &view);
    Ok(codes::OK)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write_show(out: &mut dyn Write, v: &Value) -> std::io::Result<()> {
    // Labels in a column of 14; times (19 characters) push the value two spaces further.
    let line = |out: &mut dyn Write, label: &str, value: String| {
        let width = (label.chars().count() + 2).max(14);
        writeln!(out, "  {label:<width$}{value}")
    };
    writeln!(out, "Parked message {} ({})", v["id"], text_of(&v["state"]))?;
    line(out, "stage", text_of(&v["stage"]))?;
    line(out, "group", text_of(&v["group"]))?;
    line(
        out,
        "error",
        format!(
            "{} / {}: {}",
            text_of(&v["error_class"]),
            text_of(&v["error_kind"]),
            text_of(&v["error"])
        ),
    )?;
    line(out, "attempts", text_of(&v["attempts"]))?;
    line(
        out,
        "parked",
        format!(
            "{} by the {}",
            text_of(&v["parked_at"]),
            text_of(&v["parked_by"])
        ),
    )?;
    line(
        out,
        "replays to",
        format!(
            "{} (first routed: exchange {:?}, key {})",
            text_of(&v["origin"]["queue"]),
            text_of(&v["origin"]["exchange"]),
            text_of(&v["origin"]["routing_key"])
        ),
    )?;
    if !v["resolved_at"].is_null() {
        line(
            out,
            "resolved",
            format!(
                "{} at {} by {}{}",
                text_of(&v["state"]),
                text_of(&v["resolved_at"]),
                text_of(&v["resolved_by"]),
                v["resolution_reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        )?;
    }
    writeln!(out, "Message")?;
    line(out, "type", text_of(&v["message_type"]))?;
    line(out, "message id", text_of(&v["message_id"]))?;
    let d = &v["domain"];
    line(out, "tenant", text_of(&v["tenant"]))?;
    line(out, "invoice", text_of(&v["invoice"]))?;
    line(out, "family code", text_of(&d["family_code"]))?;
    line(
        out,
        "amount",
        d["amount"]
            .as_str()
            .map(|a| format!("{a} €"))
            .unwrap_or_else(|| "-".into()),
    )?;
    line(
        out,
        "channel",
        match (d["channel"].as_str(), d["collection"].as_str()) {
            (Some(ch), Some(col)) => format!("{ch} ({col})"),
            (Some(ch), None) => ch.to_string(),
            (None, Some(col)) => col.to_string(),
            (None, None) => "-".into(),
        },
    )?;
    line(out, "reference", text_of(&d["reference"]))?;
    line(out, "billing run", text_of(&d["run_id"]))?;
    writeln!(out, "Failure history")?;
    for e in v["history"].as_array().into_iter().flatten() {
        line(out, &short_time(&text_of(&e["at"])), text_of(&e["event"]))?;
    }
    for p in v["earlier_parkings"].as_array().into_iter().flatten() {
        line(
            out,
            &short_time(&text_of(&p["parked_at"])),
            format!(
                "also parked as {} ({} / {}), {}{}",
                p["id"],
                text_of(&p["error_class"]),
                text_of(&p["error_kind"]),
                text_of(&p["state"]),
                p["resolved_by"]
                    .as_str()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default()
            ),
        )?;
    }
    if let Some(actions) = v["actions"].as_array().filter(|a| !a.is_empty()) {
        writeln!(out, "Actions")?;
        for a in actions {
            line(
                out,
                &short_time(&text_of(&a["at"])),
                format!(
                    "{} by {}{}",
                    text_of(&a["action"]),
                    text_of(&a["by"]),
                    a["reason"]
                        .as_str()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            )?;
        }
    }
    writeln!(out, "Headers")?;
    for (k, h) in v["headers"].as_object().into_iter().flatten() {
        writeln!(out, "  {k}: {}", text_of(h))?;
    }
    let masked = v["personal_data_masked"].as_bool().unwrap_or(true);
    writeln!(
        out,
        "Body{}",
        if masked {
            " (personal data masked; --reveal shows it)"
        } else {
            ""
        }
    )?;
    let body = serde_json::to_string_pretty(&v["body"]).unwrap_or_default();
    for l in body.lines() {
        writeln!(out, "  {l}")?;
    }
    Ok(())
}

/// The IDs a replay is about: given, or selected by group / all and the filters.
async fn selected_ids(ledger: &Ledger, a: &ReplayArgs) -> Result<Vec<i64>, (u8, String)> {
    if !a.ids.is_empty() {
        return Ok(a.ids.clone());
    }
    let mut f = filter(&a.selection, Some(State::Parked))?;
    if let Some(group) = &a.group {
        f.group = Some(GroupKey::parse(group).map_err(|e| (codes::USAGE, e))?);
    }
    ledger
        .inspect(move |tx| tx.parked_ids(&f))
        .await
        .map_err(ledger_failure)
}

fn write_outcomes(out: &mut dyn Write, outcomes: &[Outcome], json: bool) {
    if json {
        let _ = write_json(out, &outcomes);
        return;
    }
    for o in outcomes {
        let text = match o {
            Outcome::Replayed { id, queue } => format!("{id}: replayed to {queue}"),
            Outcome::WouldReplay { id, queue } => {
                format!("{id}: would be replayed to {queue} (dry run)")
            }
            Outcome::Discarded { id } => format!("{id}: discarded"),
            Outcome::AlreadyResolved { id, state, at, by } => format!(
                "{id}: already {} at {} by {}; nothing done",
                state.as_str(),
                or_dash(at.as_deref()),
                or_dash(by.as_deref())
            ),
            Outcome::NotFound { id } => format!("{id}: no such parked message"),
            Outcome::Failed { id, error } => format!("{id}: not replayed: {error}"),
        };
        let _ = writeln!(out, "{text}");
    }
}

/// 1 if anything failed, else 66 if an ID was unknown, else 0.
fn outcome_code(outcomes: &[Outcome]) -> u8 {
    if outcomes.iter().any(|o| matches!(o, Outcome::Failed { .. })) {
        codes::FAILURE
    } else if outcomes.iter().any(Outcome::is_error) {
        codes::NOT_FOUND
    } else {
        codes::OK
    }
}

async fn replay_cmd(
    ledger: &Ledger,
    runtime: &encaisse_pipelines::runtime::RuntimeConfig,
    a: &ReplayArgs,
    json: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let ids = selected_ids(ledger, a).await?;
    if ids.is_empty() {
        if json {
            let _ = write_json(out, &Vec::<Outcome>::new());
        } else {
            let _ = writeln!(out, "Nothing to replay: no parked message matches.");
        }
        return Ok(codes::OK);
    }
    let outcomes = if a.dry_run {
        replay::plan(ledger, ids).await.map_err(ops_failure)?
    } else {
        let replayer = Replayer::connect(runtime).await.map_err(ops_failure)?;
        let outcomes = replayer.replay(ledger, &ids, &actor(a.by.as_deref())).await;
        replayer.close().await;
        outcomes
    };
    write_outcomes(out, &outcomes, json);
    Ok(outcome_code(&outcomes))
}

fn ops_failure(e: replay::OpsError) -> (u8, String) {
    let code = match e {
        replay::OpsError::BrokerUnreachable(_) => codes::UNAVAILABLE,
        replay::OpsError::Invalid(_) => codes::USAGE,
        replay::OpsError::Ledger(_) => codes::IO_ERROR,
    };
    (code, e.to_string())
}

async fn discard(ledger: &Ledger, a: &DiscardArgs, json: bool, out: &mut dyn Write) -> CmdResult {
    let outcomes = replay::discard(ledger, a.ids.clone(), &actor(a.by.as_deref()), &a.reason)
        .await
        .map_err(ops_failure)?;
    write_outcomes(out, &outcomes, json);
    Ok(outcome_code(&outcomes))
}
