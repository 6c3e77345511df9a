//! The web console in a real browser: Debian's Chromium driven over WebDriver (chromedriver)
//! against the real daemon, the real stages and the real RabbitMQ.
//!
//! One story, one daemon: a wrong password is refused; ops log in, see the parked messages
//! (two invoices of a commune missing from the configuration), open one and discard it with
//! a reason (recorded in the ledger and on the audit page) and replay another; an invoice exported through the
//! real stages is found and its timeline shown; the month's reconciliation shows the
//! ledger's totals to the cent; finance see no action form and get 403 when they post one.
//! A screenshot of each page goes to `target/console-screenshots/`.
//!
//! Skips (saying so) when `chromium` or `chromedriver` is missing, unless
//! `ENCAISSE_REQUIRE_BROWSER=1` (CI), where a missing browser fails the test.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BROKER_URL, Daemon, Topology, unique_prefix, wait_for_status, write_config};
use encaisse_ledger::rusqlite::{Connection, OpenFlags};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const START: Duration = Duration::from_secs(60);
const OPS: (&str, &str) = ("anne", "anne-mot-de-passe-7");
const FINANCE: (&str, &str) = ("marc", "marc-mot-de-passe-9");
const REASON: &str = "Commune d'Ivry pas encore raccordée : facture reprise à la main";

/// `name` on the `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium and chromedriver, or `None` (after saying why) when the test must skip.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let found = (on_path("chromium"), on_path("chromedriver"));
    if let (Some(chromium), Some(driver)) = found {
        return Some((chromium, driver));
    }
    if std::env::var("ENCAISSE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!(
            "ENCAISSE_REQUIRE_BROWSER=1 but chromium or chromedriver is missing (scripts/setup.sh installs them)"
        );
    }
    eprintln!(
        "SKIPPED console_browser: chromium or chromedriver not found on PATH (scripts/setup.sh installs them; ENCAISSE_REQUIRE_BROWSER=1 makes this a failure)"
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, killed on drop.
struct Driver(Child, u16);

impl Driver {
    fn start(path: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn open_browser(chromium: &Path, driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=fr-FR",
                format!("--user-data-dir={}", profile.display()),
            ],
            // The users' language: the console answers in French.
            "prefs": {"intl.accept_languages": "fr-FR,fr"}
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .unwrap()
}

/// The screenshot of the current page, as `target/console-screenshots/<name>.png`.
async fn screenshot(client: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Clicks what `locator` finds and waits until the page it leads to has replaced the current
/// one: a click only starts the navigation, and a find or a URL read right after it can still
/// see the old page (a login's Argon2 check takes a while in a debug build on a busy machine).
async fn click_and_load(client: &Client, locator: Locator<'_>) {
    let old_page = client.find(Locator::Css("html")).await.unwrap();
    client.find(locator).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The old document's root goes stale once the new page is loaded.
    while old_page.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the page did not change after the click"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("body"))
        .await
        .unwrap();
}

async fn login(client: &Client, base: &str, (user, password): (&str, &str)) {
    client.goto(&format!("{base}/login")).await.unwrap();
    client
        .find(Locator::Css("#username"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    client
        .find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click_and_load(client, Locator::Css("form.login button[type=submit]")).await;
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn logout(client: &Client) {
    click_and_load(client, Locator::Css("form.logout button")).await;
}

/// An invoice of Ivry as a source application publishes it (Ivry is not configured here, so
/// `polyfac.export` parks it as `unknown_tenant`).
fn ivry_invoice(number: &str) -> Value {
    json!({
        "schema_version": 1,
        "invoice": {"tenant": "ivry", "exercice": 2026, "number": number},
        "source": {"application": "kiosque-ivry", "run_id": "run-console", "file": "IVRY_202601.csv", "lines": [2, 2]},
        "content_hash": format!("hash-{number}"),
        "issued_on": "2026-01-31",
        "period": 1,
        "activity": "PERISCOLAIRE",
        "budget": "principal",
        "collection": "titres",
        "family_code": "FAM000789",
        "payer": {
            "civilite": "M", "last_name": "Martin-Garnier", "first_name": "Paul",
            "address": {"street": "5 rue Danton", "postal_code": "94200", "city": "Ivry-sur-Seine"},
            "email": "paul.martin@example.org"
        },
        "lines": [{"number": 1, "product": "CANTINE", "cod_prod_loc": "CANT", "nature": "7067",
                   "label": "Restauration scolaire", "quantity": "10", "unit_price": "3.35", "amount": "33.50"}],
        "total": "33.50",
        "due_date": "2026-02-28",
        "payment_mode": "TIPI",
        "online_payable": true
    })
}

/// A payment of Vitry's invoice, as `payfip.confirm` publishes it.
fn payment() -> Value {
    json!({
        "schema_version": 1,
        "invoice": {"tenant": "vitry", "exercice": 2026, "number": "F2026-000102"},
        "payment_id": "payfip:CONSOLE-TEST-1",
        "amount": "70.13",
        "channel": "CB",
        "source": "payfip",
        "paid_at": "2026-03-02T10:15:00+01:00",
        "reference": "numauto 123456",
    })
}

/// The example configuration for Vitry only, with a console of two users on a free port.
fn config(dir: &Path, prefix: &str) -> (PathBuf, u16) {
    let full = write_config(dir, prefix, BROKER_URL);
    let text = std::fs::read_to_string(&full).unwrap();
    let ivry = text.match_indices("[[tenants]]").nth(1).unwrap().0;
    let port = free_port();
    let hash = |p: &str| encaisse::console::password::hash(p).unwrap();
    let console = format!(
        "\n[console]\nlisten = \"127.0.0.1:{port}\"\nmax_failed_logins = 3\n\n\
         [[console.users]]\nname = \"{}\"\npassword_hash = \"{}\"\nrole = \"ops\"\n\n\
         [[console.users]]\nname = \"{}\"\npassword_hash = \"{}\"\nrole = \"finance\"\n",
        OPS.0,
        hash(OPS.1),
        FINANCE.0,
        hash(FINANCE.1)
    );
    let path = dir.join("console.toml");
    std::fs::write(&path, format!("{}{console}", &text[..ivry])).unwrap();
    (path, port)
}

fn ledger(dir: &Path) -> Connection {
    Connection::open_with_flags(
        dir.join("data/ledger.sqlite"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + START;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn euros_fr(cents: i64) -> String {
    format!("{} €", rust_decimal::Decimal::new(cents, 2)).replace('.', ",")
}

#[tokio::test]
async fn ops_and_finance_use_the_console_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("console");
    let _cleanup = Topology(prefix.clone());
    let (config, port) = config(tmp.path(), &prefix);
    let mut daemon = Daemon::start(&config, &[]);
    let http = daemon.http_base();
    daemon.wait_for_line("Console listening.", START);
    wait_for_status(&format!("{http}/readyz"), 200, START).await;
    let base = format!("http://127.0.0.1:{port}");

    // Data through the real stages: two parked invoices, an export with a payment.
    for number in ["I2026-000001", "I2026-000002"] {
        common::publish_event::<encaisse_schemas::InvoiceIssued>(&prefix, &ivry_invoice(number))
            .await;
    }
    let inbox = tmp.path().join("data/vitry/polyfac/inbox");
    let sample = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("adapters/polyfac/samples/polyfac-2-invoices.csv"),
    )
    .unwrap();
    std::fs::write(inbox.join("FACT_202601.csv"), sample).unwrap();
    let parked: Vec<i64> = wait_for("two parked messages", || {
        let c = ledger(tmp.path());
        let mut stmt = c
            .prepare("SELECT id FROM parked_message WHERE state = 'parked' AND stage = 'polyfac.export' ORDER BY id")
            .ok()?;
        let ids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        (ids.len() == 2).then_some(ids)
    });
    wait_for("the PES Aller", || {
        let c = ledger(tmp.path());
        c.query_row(
            "SELECT count(*) FROM emitted_file WHERE kind = 'pes_aller'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .filter(|n| *n > 0)
    });
    common::publish_event::<encaisse_schemas::PaymentReceived>(&prefix, &payment()).await;
    wait_for("the payment", || {
        let c = ledger(tmp.path());
        c.query_row(
            "SELECT count(*) FROM polyfac_payment WHERE tenant = 'vitry'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .filter(|n| *n > 0)
    });

    let driver = Driver::start(&chromedriver);
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&chromium, &driver, profile.path()).await;

    // Anonymous: to the login page. Wrong password: refused, still there.
    client.goto(&format!("{base}/parked")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    screenshot(&client, "login").await;
    login(&client, &base, (OPS.0, "not the password")).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/login");
    assert!(
        text_of(&client, ".notice.error")
            .await
            .contains("Identifiant ou mot de passe incorrect"),
    );

    // Ops: the overview, the parked messages, one opened and discarded with a reason.
    login(&client, &base, OPS).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/");
    let overview = client.source().await.unwrap();
    assert!(
        overview.contains("polyfac.export/unknown_tenant"),
        "{overview}"
    );
    screenshot(&client, "overview").await;
    client.goto(&format!("{base}/parked")).await.unwrap();
    screenshot(&client, "parked-groups").await;
    click_and_load(&client, Locator::LinkText("polyfac.export/unknown_tenant")).await;
    let id = parked[0].to_string();
    click_and_load(&client, Locator::LinkText(&id)).await;
    let detail = client.source().await.unwrap();
    assert!(detail.contains("unknown_tenant"), "{detail}");
    assert!(
        !detail.contains("Martin-Garnier"),
        "personal data must be masked"
    );
    assert!(
        !detail.contains("paul.martin@example.org"),
        "personal data must be masked"
    );
    screenshot(&client, "parked-message").await;
    client
        .find(Locator::Css("#reason"))
        .await
        .unwrap()
        .send_keys(REASON)
        .await
        .unwrap();
    click_and_load(&client, Locator::Css("form[action$='/discard'] button")).await;
    assert!(text_of(&client, ".notice").await.contains("1 traité(s)"));
    let (state, by, reason): (String, String, String) = ledger(tmp.path())
        .query_row(
            "SELECT state, resolved_by, resolution_reason FROM parked_message WHERE id = ?1",
            [parked[0]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), by.as_str(), reason.as_str()),
        ("discarded", "console:anne", REASON)
    );
    client.goto(&format!("{base}/audit")).await.unwrap();
    let audit = client.source().await.unwrap();
    assert!(
        audit.contains("discard") && audit.contains(REASON),
        "{audit}"
    );
    screenshot(&client, "audit").await;

    // An invoice found by its number, its timeline.
    client
        .goto(&format!("{base}/invoices?tenant=vitry&q=F2026-000102"))
        .await
        .unwrap();
    click_and_load(&client, Locator::LinkText("vitry/2026/F2026-000102")).await;
    // In French: each step's kind is in the page's markup, its wording in the text.
    let timeline = text_of(&client, "ol.timeline").await;
    for (kind, words) in [
        ("issued", "Facture lue dans l'export et publiée"),
        ("titre_emitted", "Titre émis vers la Trésorerie (PES Aller)"),
        ("file_emitted", "Fichier écrit :"),
        (
            "reglement_recorded",
            "Ligne de paiement préparée pour Polyfac (REGLEMENTS)",
        ),
    ] {
        assert!(
            client
                .find(Locator::Css(&format!("ol.timeline li[data-kind={kind}]")))
                .await
                .is_ok(),
            "{kind} missing:\n{timeline}"
        );
        assert!(timeline.contains(words), "{words:?} missing:\n{timeline}");
    }
    screenshot(&client, "invoice-timeline").await;

    // The month's reconciliation against the ledger, to the cent.
    let c = ledger(tmp.path());
    // Months are Europe/Paris: the month of the latest invoice, in Paris.
    let paris_month = |at: &str| {
        chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&chrono_tz::Europe::Paris)
            .format("%Y-%m")
            .to_string()
    };
    let (latest, invoices, invoiced): (String, i64, i64) = c
        .query_row(
            "SELECT max(published_at), count(*), sum(total_cents) FROM polyfac_issued
             WHERE tenant = 'vitry'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let month = paris_month(&latest);
    let mut stmt = c
        .prepare(
            "SELECT seen_at, amount_cents FROM polyfac_payment
             WHERE tenant = 'vitry' AND confirms IS NULL",
        )
        .unwrap();
    let collected: i64 = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(seen_at, _)| paris_month(seen_at) == month)
        .map(|(_, cents)| cents)
        .sum();
    assert_eq!(invoices, 2);
    assert_eq!(collected, 7013);
    client
        .goto(&format!("{base}/reconciliation/vitry/{month}"))
        .await
        .unwrap();
    let total = |field: &'static str| {
        let client = client.clone();
        async move { text_of(&client, &format!("tfoot td[data-field={field}]")).await }
    };
    assert_eq!(total("invoices").await, invoices.to_string());
    assert_eq!(total("invoiced").await, euros_fr(invoiced));
    assert_eq!(total("collected").await, euros_fr(collected));
    assert_eq!(total("card").await, euros_fr(collected));
    assert_eq!(total("outstanding").await, euros_fr(invoiced - collected));
    // The stages recorded each invoice's activity: no line of unknown activity.
    assert!(
        client
            .find_all(Locator::Css("tbody tr[data-activity='']"))
            .await
            .unwrap()
            .is_empty(),
        "every line has its activity"
    );
    assert!(
        client.find(Locator::Css("figure svg rect")).await.is_ok(),
        "a bar in the chart"
    );
    screenshot(&client, "reconciliation").await;
    client.goto(&format!("{base}/files")).await.unwrap();
    assert!(client.source().await.unwrap().contains("pes_aller"));
    screenshot(&client, "files").await;
    logout(&client).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/login");

    // Finance: no action form, and a forged post is refused.
    login(&client, &base, FINANCE).await;
    client
        .goto(&format!("{base}/parked/{}", parked[1]))
        .await
        .unwrap();
    assert!(
        client
            .find_all(Locator::Css("form[action$='/discard']"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .find_all(Locator::Css("form[action$='/replay']"))
            .await
            .unwrap()
            .is_empty()
    );
    let status = client
        .execute_async(
            &format!(
                "const done = arguments[arguments.length - 1];
                 const csrf = document.querySelector('input[name=csrf]').value;
                 fetch('/parked/{}/discard', {{method: 'POST',
                     headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
                     body: 'csrf=' + encodeURIComponent(csrf) + '&reason=finance'}})
                   .then(r => done(r.status));",
                parked[1]
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    let state: String = ledger(tmp.path())
        .query_row(
            "SELECT state FROM parked_message WHERE id = ?1",
            [parked[1]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "parked");
    screenshot(&client, "finance-parked-message").await;
    logout(&client).await;

    // Ops replay the other one to its stage: published, marked, audited.
    login(&client, &base, OPS).await;
    client
        .goto(&format!("{base}/parked/{}", parked[1]))
        .await
        .unwrap();
    click_and_load(&client, Locator::Css("form[action$='/replay'] button")).await;
    assert!(text_of(&client, ".notice").await.contains("1 traité(s)"));
    let (state, by): (String, String) = ledger(tmp.path())
        .query_row(
            "SELECT state, resolved_by FROM parked_message WHERE id = ?1",
            [parked[1]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), by.as_str()), ("replayed", "console:anne"));

    client.close().await.unwrap();
    assert_eq!(daemon.terminate(Duration::from_secs(40)).code(), Some(0));
}
