//! How fast the console's pages answer on a large ledger: N invoices (default 20 000;
//! `ENCAISSE_CONSOLE_LOAD_INVOICES=1000000` for the documented run in docs/console.md) spread
//! over 36 months, each with its activity, its payer's name and its journal fact, most of
//! them paid; then each page is fetched over real HTTP by a logged-in user and its median
//! time must stay under 200 ms. The rows go in through the ledger's own triggers, so the
//! reconciliation's summaries are those the stages would have left.

mod common;

use std::time::{Duration, Instant};

use encaisse::config::console::{ConsoleConfig, Role};
use encaisse_ledger::Ledger;
use encaisse_ledger::rusqlite::params;

const BATCH: usize = 50_000;
const BUDGET_MS: u128 = 200;

fn invoices() -> usize {
    std::env::var("ENCAISSE_CONSOLE_LOAD_INVOICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Month `i` of the 36 (2024-01 … 2026-12) and a time in it.
fn when(i: usize) -> (i32, String) {
    let month = i % 36;
    let (year, m) = (2024 + (month / 12) as i32, month % 12 + 1);
    let day = i % 28 + 1;
    (
        year,
        format!("{year}-{m:02}-{day:02}T08:{:02}:00.000Z", i % 60),
    )
}

async fn fill(ledger: &Ledger, n: usize) {
    ledger
        .write(|c| {
            for year in 2024..=2026 {
                c.execute(
                    "INSERT INTO polyfac_run (tenant, run_id, file, file_sha256, exercice, lines,
                         invoices, refused, closed_message_id, closed_at)
                     VALUES ('vitry', ?1, 'FACT.csv', 'x', ?2, 0, 0, 0, ?1, '2024-01-01T00:00:00Z')",
                    params![format!("run-{year}"), year],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        ledger
            .write(move |c| {
                let mut issued = c.prepare(
                    "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                         first_line, last_line, budget, collection, total_cents, message_id,
                         published_at, activity)
                     VALUES ('vitry', ?1, 'h', ?2, 'FACT.csv', ?3, ?3, ?4, 'titres', ?5, ?1, ?6, ?7)",
                )?;
                let mut named = c.prepare(
                    "INSERT INTO invoice_payer_name (tenant, name_key, invoice_key)
                     VALUES ('vitry', ?1, ?2)",
                )?;
                let mut fact = c.prepare(
                    "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail)
                     VALUES (?1, 'vitry', ?2, 'issued', '{\"file\":\"FACT.csv\"}')",
                )?;
                let mut paid = c.prepare(
                    "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents,
                         channel, source, reference, seen_at)
                     VALUES ('vitry', ?1, ?2, ?3, ?4, 'payfip', 'ref', ?5)",
                )?;
                for i in start..end {
                    let (year, at) = when(i);
                    let key = format!("vitry/{year}/F{i:07}");
                    let cents = 1000 + (i % 9000) as i64;
                    let (budget, activity) = [
                        ("eau", "EAU"),
                        ("principal", "CANTINE"),
                        ("principal", "PERISCOLAIRE"),
                        ("principal", "CRECHE"),
                    ][i % 4];
                    issued.execute(params![
                        key,
                        format!("run-{year}"),
                        i as i64,
                        budget,
                        cents,
                        at,
                        activity
                    ])?;
                    named.execute(params![payer(i), key])?;
                    fact.execute(params![key, at])?;
                    if i % 5 != 0 {
                        let channel = ["CB", "PRELEVEMENT", "TIP", "GUICHET"][i % 4];
                        paid.execute(params![format!("p:{i}"), key, cents, channel, at])?;
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
        start = end;
    }
}

/// Invoice `i`'s payer's last name, as a search key: eight common names, each with
/// 676 two-letter endings.
fn payer(i: usize) -> String {
    let names = [
        "martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
    ];
    let ending = |n: usize| char::from(b'a' + (n % 26) as u8);
    format!("{}{}{}", names[i % 8], ending(i / 8), ending(i / 208))
}

/// Logs in; returns the session cookie.
async fn login(client: &reqwest::Client, base: &str) -> String {
    let response = client
        .post(format!("{base}/login"))
        .form(&[("username", "ops"), ("password", "load-test-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_answer_within_200_ms_on_a_large_ledger() {
    let n = invoices();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let started = Instant::now();
    fill(&ledger, n).await;
    eprintln!(
        "{n} invoices written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let settings = ConsoleConfig {
        users: vec![common::console_user("ops", "load-test-password", Role::Ops)],
        ..ConsoleConfig::default()
    };
    let (base, shutdown) = common::start_console(&ledger, dir.path(), settings).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = login(&client, &base).await;

    let last = n - 1;
    let (year, _) = when(last);
    let pages = [
        "/".to_string(),
        "/parked".to_string(),
        "/reconciliation/vitry/2026-03".to_string(),
        "/reconciliation/vitry/2026-03.csv".to_string(),
        "/invoices?tenant=vitry".to_string(),
        format!("/invoices?tenant=vitry&q=F{last:07}"),
        // A common name: the first 200 of the tens of thousands that match.
        "/invoices?tenant=vitry&q=Durand".to_string(),
        format!("/invoices?tenant=vitry&q={}", payer(last)),
        format!("/invoices/vitry/{year}/F{last:07}"),
        "/files?tenant=vitry".to_string(),
        "/audit".to_string(),
    ];
    eprintln!("| page | median ms | max ms |\n| --- | --- | --- |");
    let mut slow = Vec::new();
    for page in &pages {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let response = client
                .get(format!("{base}{page}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{page}");
            let body = response.text().await.unwrap();
            times.push(t.elapsed());
            assert!(!body.is_empty());
            if page.ends_with(".csv") {
                // The summaries hold every invoice of the month, to the cent.
                let month: Vec<usize> = (0..n).filter(|i| i % 36 == 26).collect();
                let cents: i64 = month.iter().map(|i| 1000 + (i % 9000) as i64).sum();
                let total = body.lines().last().unwrap_or_default().to_string();
                let expected = format!(
                    "vitry,2026-03,TOTAL,,{},{}.{:02},",
                    month.len(),
                    cents / 100,
                    cents % 100
                );
                assert!(total.starts_with(&expected), "{total} vs {expected}");
            }
            if page.starts_with("/invoices?") && page.contains("&q=") {
                // A name search lists some of its many matches; a number finds its invoice.
                let wanted = if page.contains(&format!("q=F{last:07}")) {
                    format!("F{last:07}")
                } else {
                    "<a href=\"/invoices/vitry/".to_string()
                };
                assert!(body.contains(&wanted), "{page} finds {wanted}");
            }
        }
        times.sort();
        let (median, max) = (times[2], times[4]);
        eprintln!(
            "| `{page}` | {} | {} |",
            median.as_millis(),
            max.as_millis()
        );
        if median > Duration::from_millis(BUDGET_MS as u64) {
            slow.push(format!("{page}: {} ms", median.as_millis()));
        }
    }
    shutdown.cancel();
    assert!(
        slow.is_empty(),
        "pages over {BUDGET_MS} ms with {n} invoices: {slow:?}"
    );
}
