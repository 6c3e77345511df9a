use super::*;
use crate::config::{ApiConfig, load_str};
use encaisse_polyfac::config::Field;

const EXAMPLE: &str = include_str!("../../../config/encaisse.toml");

/// The shipped example with its data directory moved into a temporary directory.
fn example() -> (Config, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = load_str(EXAMPLE, "config/encaisse.toml").unwrap();
    config.data_dir = tmp.path().join("data");
    (config, tmp)
}

fn all_set(_: &str) -> Option<String> {
    Some("a-token-of-thirty-two-characters".into())
}

fn fields(report: &Report) -> Vec<&str> {
    report.issues.iter().map(|i| i.field.as_str()).collect()
}

fn issues_after(change: impl FnOnce(&mut Config)) -> Vec<String> {
    let (mut config, _tmp) = example();
    change(&mut config);
    check(&config, &all_set)
        .issues
        .iter()
        .map(|i| i.to_string())
        .collect()
}

fn has(issues: &[String], field: &str) -> bool {
    issues.iter().any(|i| i.starts_with(&format!("{field}: ")))
}

#[test]
fn example_configuration_is_clean() {
    let (config, _tmp) = example();
    let report = check(&config, &all_set);
    assert_eq!(report.issues, vec![], "{:#?}", report.issues);
    assert_eq!(report.warnings, vec![]);
    assert_eq!(config.tenants.len(), 2);
}

#[test]
fn example_tenants_know_every_product_of_the_brief() {
    let (config, _tmp) = example();
    let expected = [
        ("CANTINE", "PERISCOLAIRE"),
        ("ETUDE", "PERISCOLAIRE"),
        ("ACCUEIL_MATIN", "PERISCOLAIRE"),
        ("ACCUEIL_SOIR", "PERISCOLAIRE"),
        ("CENTRE_LOISIRS", "PERISCOLAIRE"),
        ("CRECHE_HEURE", "CRECHE"),
        ("SEJOUR", "SEJOUR"),
        ("CLASSE_DECOUVERTE", "CLASSE_DECOUVERTE"),
        ("ATELIER", "ANTENNE_QUARTIER"),
    ];
    for tenant in &config.tenants {
        for (product, activity) in expected {
            let found = tenant.products.iter().find(|p| p.code == product);
            assert_eq!(
                found.map(|p| p.activity.as_str()),
                Some(activity),
                "{} {product}",
                tenant.id
            );
        }
    }
    let ivry = config.tenant("ivry").unwrap();
    let creche = ivry.activities.iter().find(|a| a.code == "CRECHE").unwrap();
    assert_eq!(creche.collection, CollectionPath::Regie);
    assert!(ivry.sepa.is_some(), "Ivry's régie debits directly");
    let vitry = config.tenant("vitry").unwrap();
    let sejour = vitry
        .activities
        .iter()
        .find(|a| a.code == "SEJOUR")
        .unwrap();
    assert_eq!(sejour.budget, "caisse-ecoles");
}

#[test]
fn missing_token_variable_is_a_warning_not_an_issue() {
    let (config, _tmp) = example();
    let report = check(&config, &|name| {
        (name != "ENCAISSE_TOKEN_IVRY").then(|| "a-token-of-thirty-two-characters".to_string())
    });
    assert!(report.is_ok());
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].field, "tenants[1].api.token_env");
}

#[test]
fn invalid_token_variable_name_is_an_issue() {
    let issues = issues_after(|c| {
        c.tenants[0].api = Some(ApiConfig {
            token_env: "my token".into(),
        })
    });
    assert!(has(&issues, "tenants[0].api.token_env"), "{issues:?}");
}

#[test]
fn identifiers_are_checked() {
    let issues = issues_after(|c| {
        let budget = &mut c.tenants[0].budgets[0];
        budget.siret = "21940081000013".into();
        budget.cod_col = "000".into();
        budget.cod_bud = "0A".into();
        budget.payfip_numcli = Some("94081".into());
        c.tenants[1].regies[0].payfip_numcli = Some("ABCDEF".into());
        c.tenants[1].products[0].cod_prod_loc = "TOOLONG".into();
    });
    for field in [
        "tenants[0].budgets[0].siret",
        "tenants[0].budgets[0].cod_col",
        "tenants[0].budgets[0].cod_bud",
        "tenants[0].budgets[0].payfip_numcli",
        "tenants[1].regies[0].payfip_numcli",
        "tenants[1].products[0].cod_prod_loc",
    ] {
        assert!(has(&issues, field), "{field} not in {issues:#?}");
    }
    assert_eq!(issues.len(), 6, "{issues:#?}");
}

#[test]
fn references_between_sections_are_checked() {
    let issues = issues_after(|c| {
        c.tenants[0].activities[0].budget = "nowhere".into();
        c.tenants[0].products[0].activity = "NOTHING".into();
        c.tenants[1].activities[1].regie = Some("regie-ghost".into());
        c.tenants[0].source = "crechesoft".into();
    });
    assert!(
        has(&issues, "tenants[0].activities[0].budget"),
        "{issues:#?}"
    );
    assert!(
        has(&issues, "tenants[0].products[0].activity"),
        "{issues:#?}"
    );
    assert!(
        has(&issues, "tenants[1].activities[1].regie"),
        "{issues:#?}"
    );
    assert!(has(&issues, "tenants[0].source"), "{issues:#?}");
}

#[test]
fn regie_activity_rules() {
    let issues = issues_after(|c| {
        c.tenants[1].activities[1].regie = None;
        c.tenants[0].activities[0].regie = Some("regie-creche".into());
    });
    assert!(
        has(&issues, "tenants[1].activities[1].regie"),
        "{issues:#?}"
    );
    assert!(
        has(&issues, "tenants[0].activities[0].regie"),
        "{issues:#?}"
    );
}

#[test]
fn online_payment_needs_a_client_number() {
    let issues = issues_after(|c| {
        c.tenants[0].budgets[1].payfip_numcli = None;
        c.tenants[1].regies[0].payfip_numcli = None;
    });
    // Vitry's SEJOUR and CLASSE_DECOUVERTE sit on the caisse des écoles' budget.
    assert!(has(&issues, "tenants[0].activities[3].online_payment"));
    assert!(has(&issues, "tenants[0].activities[4].online_payment"));
    assert!(has(&issues, "tenants[1].activities[1].online_payment"));
    assert_eq!(issues.len(), 3, "{issues:#?}");
}

#[test]
fn direct_debit_needs_the_creditor_identity() {
    let issues = issues_after(|c| {
        c.tenants[1].regies[0].ics = None;
        c.tenants[1].regies[0].creditor_iban = None;
    });
    assert!(has(&issues, "tenants[1].regies[0].ics"), "{issues:#?}");
    assert!(has(&issues, "tenants[1].regies[0].creditor_iban"));
    // A régie that does not debit (no creditor identity) needs no [tenants.sepa] section.
    let issues = issues_after(|c| {
        let regie = &mut c.tenants[1].regies[0];
        (regie.ics, regie.creditor_iban, regie.creditor_name) = (None, None, None);
        c.tenants[1].sepa = None;
    });
    assert_eq!(issues, Vec::<String>::new());
}

#[test]
fn a_regie_set_up_for_direct_debit_needs_the_sepa_section() {
    let issues = issues_after(|c| c.tenants[1].sepa = None);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert!(has(&issues, "tenants[1].sepa"), "{issues:#?}");
    assert!(issues[0].contains("activities CRECHE"), "{issues:#?}");
    assert!(issues[0].contains("refused"), "{issues:#?}");
    // An ICS alone is enough to say the régie debits.
    let issues = issues_after(|c| {
        c.tenants[1].regies[0].creditor_iban = None;
        c.tenants[1].sepa = None;
    });
    assert!(has(&issues, "tenants[1].sepa"), "{issues:#?}");
}

#[test]
fn titres_without_helios_are_a_warning() {
    let (mut config, _tmp) = example();
    config.tenants[0].helios = None;
    let report = check(&config, &all_set);
    assert!(report.is_ok(), "{:#?}", report.issues);
    assert_eq!(report.warnings.len(), 1, "{:#?}", report.warnings);
    let warning = &report.warnings[0];
    assert_eq!(warning.field, "tenants[0].helios");
    assert!(
        warning
            .message
            .contains("PERISCOLAIRE, CRECHE, ANTENNE_QUARTIER, SEJOUR, CLASSE_DECOUVERTE"),
        "{warning}"
    );
    assert!(warning.message.contains("no_helios_config"), "{warning}");
    // A tenant with no titres activity needs no [tenants.helios].
    config.tenants[0]
        .activities
        .retain(|a| a.collection != CollectionPath::Titres);
    config.tenants[0].products.clear();
    assert!(check(&config, &all_set).warnings.is_empty());
}

#[test]
fn duplicates_are_named() {
    let issues = issues_after(|c| {
        let first = c.tenants[0].clone();
        c.tenants[1].id = first.id.clone();
        let product = c.tenants[0].products[0].clone();
        c.tenants[0].products.push(product);
        c.tenants[0].budgets[1].cod_col = c.tenants[0].budgets[0].cod_col.clone();
    });
    assert!(has(&issues, "tenants[1].id"), "{issues:#?}");
    assert!(has(&issues, "tenants[0].products[9].code"), "{issues:#?}");
    assert!(has(&issues, "tenants[0].budgets[1].cod_bud"), "{issues:#?}");
}

#[test]
fn runtime_settings_are_checked() {
    let issues = issues_after(|c| {
        c.broker.url = "http://guest:secret@localhost".into();
        c.broker.prefix = "en caisse".into();
        c.broker.prefetch = 0;
        c.retry.tiers_secs = vec![30, 5];
        c.retry.max_attempts = 0;
    });
    assert!(has(&issues, "broker.url"));
    assert!(
        !issues.iter().any(|i| i.contains("secret")),
        "the URL's credentials must not be echoed: {issues:#?}"
    );
    assert!(has(&issues, "broker.prefix"));
    assert!(has(&issues, "broker.prefetch"));
    assert!(has(&issues, "retry.tiers_secs[1]"));
    assert!(has(&issues, "retry.max_attempts"));
}

#[test]
fn inbox_timings_are_checked() {
    let issues = issues_after(|c| {
        c.polyfac.inbox_poll_interval_ms = 0;
        c.helios.inbox_poll_interval_ms = 0;
        c.sepa.inbox_poll_interval_ms = 0;
    });
    for field in [
        "polyfac.inbox_poll_interval_ms",
        "helios.inbox_poll_interval_ms",
        "sepa.inbox_poll_interval_ms",
    ] {
        assert!(has(&issues, field), "{field} not in {issues:#?}");
    }
    assert_eq!(issues.len(), 3, "{issues:#?}");
}

#[test]
fn unusable_data_dir_is_an_issue() {
    let (mut config, tmp) = example();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    config.data_dir = file.join("data");
    let report = check(&config, &all_set);
    assert_eq!(fields(&report), vec!["data_dir"]);
}

#[test]
fn no_tenant_is_an_issue() {
    let issues = issues_after(|c| c.tenants.clear());
    assert_eq!(issues.len(), 1);
    assert!(has(&issues, "tenants"));
}

#[test]
fn enabled_online_payment_needs_a_public_url() {
    let issues = issues_after(|c| {
        if let Some(gateway) = c.payfip.as_mut() {
            gateway.public_base_url = None;
        }
    });
    assert!(
        has(&issues, "tenants[0].payfip.public_base_url"),
        "{issues:#?}"
    );
    assert!(
        has(&issues, "tenants[1].payfip.public_base_url"),
        "{issues:#?}"
    );
}

#[test]
fn adapter_sections_are_validated_by_their_adapter() {
    let text = EXAMPLE.replacen(
        "return_url_prefixes = [\"https://kiosque.vitry.example/\"]",
        "return_url_prefixes = [\"https://kiosque.vitry.example\"]",
        1,
    );
    assert_ne!(text, EXAMPLE);
    let tmp = tempfile::tempdir().unwrap();
    let mut config = load_str(&text, "test.toml").unwrap();
    config.data_dir = tmp.path().join("data");
    let report = check(&config, &all_set);
    assert_eq!(
        fields(&report),
        vec!["tenants[0].payfip.return_url_prefixes[0]"],
        "{:#?}",
        report.issues
    );
}

#[test]
fn a_short_api_token_is_an_issue_naming_its_key_not_its_value() {
    let (config, _tmp) = example();
    let report = check(&config, &|name| {
        Some(if name == "ENCAISSE_TOKEN_VITRY" {
            "s3cret-but-short".to_string()
        } else {
            "a-token-of-thirty-two-characters".to_string()
        })
    });
    assert_eq!(fields(&report), vec!["tenants[0].api.token_env"]);
    let message = &report.issues[0].message;
    assert!(message.contains("ENCAISSE_TOKEN_VITRY") && message.contains("16 characters"));
    assert!(!message.contains("s3cret"), "{message}");
}

/// The crèche mapping of the integrators' guide, read by a tenant.
fn with_creche_source(c: &mut Config) {
    let mapping: encaisse_polyfac::SourceMapping = toml::from_str(include_str!(
        "../../../adapters/polyfac/samples/creche-mapping.toml"
    ))
    .unwrap();
    c.sources.insert("creche".into(), mapping);
    c.tenants[0].source = "creche".into();
}

#[test]
fn a_source_is_checked_against_each_tenant_reading_it() {
    assert_eq!(issues_after(with_creche_source), Vec::<String>::new());
    let issues = issues_after(|c| {
        with_creche_source(c);
        let creche = c.sources.get_mut("creche").unwrap();
        creche
            .product_values
            .insert("HEURES".into(), "CRECHE_HEUR".into());
        creche
            .product_values
            .insert("REPAS".into(), "CANTINE".into());
        creche
            .activity_values
            .insert("Crèche".into(), "CRECH".into());
        for (field, value) in [
            (Field::Quantity, "un"),
            (Field::Period, "13"),
            (Field::PaymentMode, "CHEQUE"),
        ] {
            creche.columns.remove(&field);
            creche.fixed.insert(field, value.into());
        }
    });
    for field in [
        "sources.creche.product_values.HEURES",
        "sources.creche.product_values.REPAS",
        "sources.creche.activity_values.Crèche",
        "sources.creche.fixed.quantity",
        "sources.creche.fixed.period",
        "sources.creche.fixed.payment_mode",
    ] {
        assert!(has(&issues, field), "{field} not in {issues:#?}");
    }
    assert!(
        issues
            .iter()
            .any(|i| i.contains("\"CRECHE_HEUR\" is not a product of tenant vitry")),
        "{issues:#?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.contains("belongs to activity \"PERISCOLAIRE\"")),
        "{issues:#?}"
    );
    assert_eq!(issues.len(), 6, "{issues:#?}");
    assert!(issues.iter().all(|i| !i.contains('?')), "{issues:#?}");
}

#[test]
fn further_sources_must_be_known_listed_once_and_fit_the_tenant() {
    let issues = issues_after(|c| {
        with_creche_source(c);
        c.tenants[0].source = "polyfac".into();
        c.tenants[0].extra_sources = vec!["creche".into(), "sejours".into(), "creche".into()];
        c.sources
            .get_mut("creche")
            .unwrap()
            .product_values
            .insert("HEURES".into(), "NOPE".into());
    });
    for field in [
        "tenants[0].extra_sources[1]",
        "tenants[0].extra_sources[2]",
        "sources.creche.product_values.HEURES",
    ] {
        assert!(has(&issues, field), "{field} not in {issues:#?}");
    }
    assert_eq!(issues.len(), 3, "{issues:#?}");
}
