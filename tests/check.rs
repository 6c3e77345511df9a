//! `encaisse check` and the command line, run as a person would: exit codes and messages.

mod common;

use std::process::Output;

use common::{BROKER_URL, command, unique_prefix, write_config};

fn run(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn shipped_example_configuration_passes() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("{manifest}/config/encaisse.toml");
    // The example's relative data_dir would be created nowhere by check; point it at a temp dir.
    let output = command(&["--config", &config, "check"])
        .env("ENCAISSE_DATA_DIR", tmp.path().join("data"))
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("config/encaisse.toml: OK"), "{stdout}");
    assert!(stdout.contains("tenants: 2"), "{stdout}");
    assert!(stdout.contains("vitry (Vitry-sur-Seine)"), "{stdout}");
    assert!(stdout.contains("ivry (Ivry-sur-Seine)"), "{stdout}");
    assert!(stdout.contains("stages: "), "{stdout}");
    assert!(
        stdout.contains("overridden by: ENCAISSE_DATA_DIR"),
        "{stdout}"
    );
    assert!(
        !tmp.path().join("data").exists(),
        "check must not create the data directory"
    );
}

#[test]
fn unknown_key_exits_78_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), "unused", BROKER_URL);
    let original = std::fs::read_to_string(&path).unwrap();
    let bad = original.replacen(
        "label = \"Caisse des écoles de Vitry-sur-Seine\"",
        "label = \"Caisse des écoles de Vitry-sur-Seine\"\ncolour = \"blue\"",
        1,
    );
    assert_ne!(bad, original);
    std::fs::write(&path, bad).unwrap();
    let output = run(&["--config", path.to_str().unwrap(), "check"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.starts_with("tenants[0].budgets[1].colour: unknown field `colour`"),
        "{stderr}"
    );
    assert!(stderr.contains("line "), "the line is given: {stderr}");
    assert!(text(&output.stdout).is_empty());
}

#[test]
fn failed_cross_checks_exit_78_with_one_line_per_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), "unused", BROKER_URL);
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "siret = \"21940081000012\"",
            "siret = \"21940081000013\"",
            1,
        )
        .replacen(
            "budget = \"caisse-ecoles\"",
            "budget = \"caisse-des-ecoles\"",
            1,
        );
    std::fs::write(&path, bad).unwrap();
    let output = run(&["--config", path.to_str().unwrap(), "check"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tenants[0].budgets[0].siret: ") && l.contains("Luhn")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tenants[0].activities[3].budget: unknown budget")),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems found"), "{stderr}");
}

#[test]
fn missing_file_is_a_configuration_error() {
    let output = run(&["--config", "/nonexistent/encaisse.toml", "check"]);
    assert_eq!(output.status.code(), Some(78));
    assert!(text(&output.stderr).contains("/nonexistent/encaisse.toml"));
}

#[test]
fn connect_reaches_the_broker() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), &unique_prefix("check"), BROKER_URL);
    let output = run(&["--config", path.to_str().unwrap(), "check", "--connect"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("broker: reachable at amqp://***@127.0.0.1:5672/%2f"),
        "credentials are hidden: {stdout}"
    );
}

#[test]
fn connect_to_a_closed_port_exits_69() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("amqp://guest:secret@127.0.0.1:{port}/%2f");
    let path = write_config(tmp.path(), "unused", &url);
    let output = run(&["--config", path.to_str().unwrap(), "check", "--connect"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.starts_with("broker.url: cannot connect"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

#[test]
fn bad_command_line_exits_2_and_help_exits_0() {
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run(&["check", "--log-format", "xml"]).status.code(),
        Some(2)
    );
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let stdout = text(&help.stdout);
    for sub in ["run", "check", "dlq", "trace", "payfip-sim", "demo"] {
        assert!(stdout.contains(sub), "{sub} missing from --help: {stdout}");
    }
    assert!(stdout.contains("78"), "exit codes are documented in --help");
}

#[test]
fn a_short_api_token_is_refused_with_its_key_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), "unused", BROKER_URL);
    let output = command(&["--config", path.to_str().unwrap(), "check"])
        .env("ENCAISSE_TOKEN_VITRY", "s3cret-but-short")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "tenants[0].api.token_env: the token in ENCAISSE_TOKEN_VITRY has 16 characters"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret"),
        "the token itself is never printed"
    );
}

#[test]
fn a_production_tenant_needs_https_gateway_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), "unused", BROKER_URL);
    let original = std::fs::read_to_string(&path).unwrap();
    let bad = original
        .replacen(
            "public_base_url = \"https://encaisse.siim94.example\"",
            "public_base_url = \"https://encaisse.siim94.example\"\nclassic_url = \"http://payfip.example/tpa/paiement.web\"",
            1,
        )
        .replacen(
            "enabled = true\nmode = \"test\"",
            "enabled = true\nmode = \"production\"",
            1,
        );
    assert_ne!(bad, original);
    std::fs::write(&path, bad).unwrap();
    let output = run(&["--config", path.to_str().unwrap(), "check"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "payfip.classic_url: must be an https URL: tenants[0].payfip is in production mode"
        )),
        "{stderr}"
    );
}

#[test]
fn a_value_map_naming_an_unknown_product_exits_78_naming_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), "unused", BROKER_URL);
    let mut config = std::fs::read_to_string(&path).unwrap().replacen(
        "source = \"polyfac\"",
        "source = \"sejours\"",
        1,
    );
    config.push_str(
        "\n[sources.sejours]\nseparator = \"\\t\"\n\n[sources.sejours.product_values]\nSEJ = \"SEJOURS\"\n",
    );
    std::fs::write(&path, config).unwrap();
    let output = run(&["--config", path.to_str().unwrap(), "check"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(
            "sources.sejours.product_values.SEJ: \"SEJOURS\" is not a product of tenant vitry"
        ),
        "{stderr}"
    );
}

#[test]
fn a_postgres_ledger_url_is_accepted_and_its_password_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), &unique_prefix("pgurl"), BROKER_URL);
    let config = path.to_str().unwrap();
    // Every area runs on PostgreSQL: `check` accepts the URL (it does not connect).
    let output = command(&["--config", config, "check"])
        .env(
            "ENCAISSE_LEDGER_URL",
            "postgres://encaisse:s3cret@127.0.0.1:5432/encaisse",
        )
        .output()
        .unwrap();
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "check: {all}");
    assert!(
        !all.contains("s3cret"),
        "the password is never printed: {all}"
    );
    // `run` against a server that refuses the account fails at the ledger, naming the URL
    // without its password, and creates no SQLite file beside it.
    let output = command(&["--config", config, "run"])
        .env(
            "ENCAISSE_LEDGER_URL",
            "postgres://encaisse_nobody:s3cret@127.0.0.1:5432/encaisse_nowhere",
        )
        .output()
        .unwrap();
    let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert_ne!(output.status.code(), Some(0), "run: {all}");
    assert!(all.contains("ledger"), "run: {all}");
    assert!(
        !all.contains("s3cret"),
        "the password is never printed: {all}"
    );
    assert!(
        !tmp.path().join("data").join("ledger.sqlite").exists(),
        "run opened no SQLite ledger"
    );
    let output = command(&["--config", config, "check"])
        .env("ENCAISSE_LEDGER_URL", "mysql://root@db/encaisse")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("ENCAISSE_LEDGER_URL"), "{stderr}");
    assert!(stderr.contains("is not a ledger URL"), "{stderr}");
}

#[test]
fn several_daemons_on_an_sqlite_ledger_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_config(tmp.path(), &unique_prefix("cluster"), BROKER_URL);
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str("\n[cluster]\nlease_ttl_ms = 100\n");
    std::fs::write(&path, config).unwrap();
    let output = run(&["--config", path.to_str().unwrap(), "check"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("cluster: several daemons need a PostgreSQL ledger")),
        "{stderr}"
    );
    assert!(
        stderr.contains("cluster.lease_ttl_ms: must be at least 300"),
        "{stderr}"
    );
}
