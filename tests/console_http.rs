//! The console's protections over real HTTP (no browser): anonymous requests go to the login
//! page, the session cookie's flags, CSRF, login throttling, idle expiry, the security
//! headers, and the language choice.

mod common;

use std::time::Duration;

use encaisse::config::console::{ConsoleConfig, Role};
use encaisse_ledger::Ledger;
use reqwest::header::{ACCEPT_LANGUAGE, COOKIE, LOCATION, SET_COOKIE};

const PASSWORD: &str = "un-mot-de-passe-solide";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn console(settings: ConsoleConfig) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let settings = ConsoleConfig {
        users: vec![common::console_user("anne", PASSWORD, Role::Ops)],
        ..settings
    };
    let (base, _shutdown) = common::start_console(&ledger, dir.path(), settings).await;
    (dir, base)
}

async fn login(base: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/login"))
        .form(&[("username", "anne"), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn session(response: &reqwest::Response) -> String {
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn anonymous_requests_go_to_login_and_the_cookie_is_locked_down() {
    let (_dir, base) = console(ConsoleConfig {
        secure_cookie: true,
        ..ConsoleConfig::default()
    })
    .await;
    for page in [
        "/",
        "/parked",
        "/reconciliation/vitry/2026-03.csv",
        "/audit",
    ] {
        let r = client().get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 303, "{page}");
        assert_eq!(r.headers()[LOCATION], "/login", "{page}");
    }
    let r = client()
        .post(format!("{base}/parked/1/discard"))
        .form(&[("reason", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/login");

    let page = client().get(format!("{base}/login")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let r = login(&base, PASSWORD).await;
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let home = client()
        .get(format!("{base}/"))
        .header(COOKIE, session(&r))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status().as_u16(), 200);
    assert!(home.text().await.unwrap().contains("Vue d&#39;ensemble"));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let (_dir, base) = console(ConsoleConfig::default()).await;
    let cookie = session(&login(&base, PASSWORD).await);
    for (path, form) in [
        ("/logout", vec![]),
        (
            "/parked/1/discard",
            vec![("reason", "test"), ("csrf", "forged")],
        ),
    ] {
        let r = client()
            .post(format!("{base}{path}"))
            .header(COOKIE, &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
    }
    // Still logged in: the refused logout did nothing.
    let r = client()
        .get(format!("{base}/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn failed_logins_are_throttled() {
    let (_dir, base) = console(ConsoleConfig {
        max_failed_logins: 3,
        ..ConsoleConfig::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(login(&base, "wrong").await.status().as_u16(), 401);
    }
    // Even the right password waits for the window to pass.
    assert_eq!(login(&base, PASSWORD).await.status().as_u16(), 429);
}

#[tokio::test]
async fn an_idle_session_expires() {
    let (_dir, base) = console(ConsoleConfig {
        idle_timeout_secs: 1,
        ..ConsoleConfig::default()
    })
    .await;
    let cookie = session(&login(&base, PASSWORD).await);
    let r = client()
        .get(format!("{base}/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = client()
        .get(format!("{base}/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[tokio::test]
async fn french_by_default_english_on_request() {
    let (_dir, base) = console(ConsoleConfig::default()).await;
    let text = |r: reqwest::Response| async { r.text().await.unwrap() };
    let fr = client().get(format!("{base}/login")).send().await.unwrap();
    assert!(text(fr).await.contains("Mot de passe"));
    let en = client()
        .get(format!("{base}/login"))
        .header(ACCEPT_LANGUAGE, "en-GB,en;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(text(en).await.contains("Password"));
    let chosen = client()
        .get(format!("{base}/login?lang=en"))
        .header(ACCEPT_LANGUAGE, "fr-FR")
        .send()
        .await
        .unwrap();
    assert!(
        chosen.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("encaisse_lang=en")
    );
    assert!(text(chosen).await.contains("Password"));
    let remembered = client()
        .get(format!("{base}/login"))
        .header(COOKIE, "encaisse_lang=en")
        .send()
        .await
        .unwrap();
    assert!(text(remembered).await.contains("Password"));
}

#[tokio::test]
async fn ops_download_emitted_files_under_the_data_directory_only() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let outbox = dir.path().join("vitry/helios/outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(outbox.join("PES_1.xml"), "<PES_Aller/>").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "not for you").unwrap();
    let (inside, elsewhere) = (
        outbox.join("PES_1.xml").display().to_string(),
        outside.path().join("secret.txt").display().to_string(),
    );
    ledger
        .write(move |c| {
            c.execute(
                "INSERT INTO emitted_file (id, tenant, kind, path, sha256, bytes, written_at)
                 VALUES (1, 'vitry', 'pes_aller', ?1, 'x', 12, '2026-03-01T00:00:00Z'),
                        (2, 'vitry', 'report', ?2, 'y', 11, '2026-03-01T00:00:00Z')",
                [inside, elsewhere],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let settings = ConsoleConfig {
        users: vec![
            common::console_user("anne", PASSWORD, Role::Ops),
            common::console_user("marc", PASSWORD, Role::Finance),
        ],
        ..ConsoleConfig::default()
    };
    let (base, _shutdown) = common::start_console(&ledger, dir.path(), settings).await;
    let login_as = |user: &'static str| {
        let base = base.clone();
        async move {
            let r = client()
                .post(format!("{base}/login"))
                .form(&[("username", user), ("password", PASSWORD)])
                .send()
                .await
                .unwrap();
            session(&r)
        }
    };
    let get = |cookie: String, path: &'static str| {
        let base = base.clone();
        async move {
            client()
                .get(format!("{base}{path}"))
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let ops = login_as("anne").await;
    let r = get(ops.clone(), "/files/1/download").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "<PES_Aller/>");
    assert_eq!(
        get(ops.clone(), "/files/2/download")
            .await
            .status()
            .as_u16(),
        410
    );
    let files = get(ops, "/files").await.text().await.unwrap();
    assert!(files.contains("/files/1/download"), "{files}");
    let finance = login_as("marc").await;
    assert_eq!(
        get(finance.clone(), "/files/1/download")
            .await
            .status()
            .as_u16(),
        403
    );
    let files = get(finance, "/files").await.text().await.unwrap();
    assert!(
        files.contains("PES_1.xml") && !files.contains("/download"),
        "{files}"
    );
}
