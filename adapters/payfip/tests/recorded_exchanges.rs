//! Every recorded exchange of spec §6 (and the fault of §3.5) replayed against the client.
//!
//! The requests, responses and faults are read from `../shared/specs/payfip.md` itself; the
//! only transformations are the ones the spec describes in prose ("same without `numauto`",
//! "inside the same `S:Fault` wrapper", the §6.4 table giving only the `<return>` children).
//! Literal copies kept in this file: the request field values of §6.3 (to build the request
//! whose bytes are then compared with the spec's).

mod common;

use chrono::DateTime;
use common::*;
use encaisse_payfip::classic::{ClassicRequest, ClassicResult};
use encaisse_payfip::client::{client_envelope, detail_envelope};
use encaisse_payfip::config::GatewayConfig;
use encaisse_payfip::error::{FaultKind, PayfipError, RetryClass};
use encaisse_payfip::fields::{Email, Exer, IdOp, NumCli, Objet, Refdet, Saisie};
use encaisse_payfip::notification::idop_from_form;
use encaisse_payfip::{CreatePayment, PayfipClient, Resultrans};
use encaisse_schemas::Money;
use url::Url;

const IDOP: &str = "cc0cb210-1cd4-11ea-8cca-0213ad91a103";

fn client_for(replay: &Replay) -> PayfipClient {
    PayfipClient::new(&GatewayConfig {
        soap_url: replay.url.clone(),
        ..GatewayConfig::default()
    })
    .unwrap()
}

/// The request of §6.3, built from its field values.
fn recorded_create_request() -> CreatePayment {
    CreatePayment {
        numcli: NumCli::new("090909").unwrap(),
        exer: Exer::new(2019).unwrap(),
        refdet: Refdet::new("ABCDEFGH").unwrap(),
        amount: Money::parse("10.00").unwrap(),
        mel: Email::new("john.doe@example.com").unwrap(),
        objet: Some(Objet::new("coucou").unwrap()),
        saisie: Saisie::new("T").unwrap(),
        urlnotif: Url::parse("https://notif.payfip.example.com/").unwrap(),
        urlredirect: Url::parse("https://redirect.payfip.example.com/").unwrap(),
    }
}

/// The §3.5 fault envelope with its `FonctionnelleErreur` detail replaced by `detail`.
fn fault_with_detail(spec: &str, detail: &str) -> String {
    let r3 = code_blocks(&section(spec, "### 3.5"))[0].clone();
    let start = r3.find("<ns2:FonctionnelleErreur").unwrap();
    let end = r3.find("</ns2:FonctionnelleErreur>").unwrap() + "</ns2:FonctionnelleErreur>".len();
    format!("{}{}{}", &r3[..start], detail, &r3[end..])
}

/// The §6.3 response envelope turned into a `recupererDetailPaiementSecurise` answer with
/// `children` inside `<return>`.
fn detail_response(spec: &str, children: &str) -> String {
    let creer = code_blocks(&section(spec, "### 6.3"))[1].clone();
    let start = creer.find("<return>").unwrap() + "<return>".len();
    let end = creer.find("</return>").unwrap();
    format!("{}{}{}", &creer[..start], children, &creer[end..]).replace(
        "creerPaiementSecuriseResponse",
        "recupererDetailPaiementSecuriseResponse",
    )
}

#[tokio::test]
async fn creer_request_is_byte_exact_and_idop_is_read() {
    let Some(spec) = spec() else { return };
    let s63 = section(&spec, "### 6.3");
    let blocks = code_blocks(&s63);
    let replay = Replay::start().await;
    replay.answer(200, blocks[1].clone());
    let client = client_for(&replay);

    let idop = client
        .create_payment(&recorded_create_request())
        .await
        .unwrap();
    assert_eq!(idop.as_str(), IDOP);

    let sent = &replay.captured()[0];
    assert_eq!(
        sent.body, blocks[0],
        "request body differs from the recorded one"
    );
    assert_eq!(sent.content_type, "text/xml; charset=utf-8");
    assert_eq!(sent.soap_action.as_deref(), Some("\"\""));
    assert_valid_payload(
        "creer-request.xml",
        &element(&sent.body, "ns0:creerPaiementSecurise"),
    );

    // "Redirect URL: `https://www.payfip.gouv.fr/tpa/paiementws.web?idop=…`".
    let redirect = s63
        .lines()
        .find(|l| l.starts_with("Redirect URL:"))
        .map(|l| backticked(l)[0].clone())
        .unwrap();
    let production = PayfipClient::new(&GatewayConfig::default()).unwrap();
    assert_eq!(production.payment_page(&idop).as_str(), redirect);

    // A success payload under an error status is not trusted.
    replay.answer(500, blocks[1].clone());
    let err = client
        .create_payment(&recorded_create_request())
        .await
        .unwrap_err();
    assert!(matches!(err, PayfipError::HttpStatus { status: 500, .. }));
    assert!(err.is_transient());
}

#[tokio::test]
async fn creer_faults_r3_and_a2_are_decoded_as_permanent() {
    let Some(spec) = spec() else { return };
    let r3 = code_blocks(&section(&spec, "### 3.5"))[0].clone();
    let a2_detail = code_blocks(&section(&spec, "### 6.3"))[2].clone();
    let a2 = fault_with_detail(&spec, &a2_detail);
    let replay = Replay::start().await;
    let client = client_for(&replay);

    // The recorded R3 came back for `<refdet>ABCD</refdet>`: we refuse it before sending.
    assert!(Refdet::new("ABCD").is_err());
    // The recorded A2 came back for `<mel>john.doeexample.com</mel>`: refused before sending.
    assert!(Email::new("john.doeexample.com").is_err());
    // An amount like the A2 request's 9990000001 cents is refused before sending too.
    let mut absurd = recorded_create_request();
    absurd.amount = Money::from_cents(9_990_000_001).unwrap();
    let err = client.create_payment(&absurd).await.unwrap_err();
    assert!(matches!(err, PayfipError::Invalid(ref f) if f.field == "montant"));
    assert_eq!(err.class(), RetryClass::Permanent);
    assert!(replay.captured().is_empty(), "nothing reaches the gateway");

    // Fixtures replay faults with 200; the gateway uses 500: both decode the same.
    for status in [200, 500] {
        replay.answer(status, r3.clone());
        let err = client
            .create_payment(&recorded_create_request())
            .await
            .unwrap_err();
        let PayfipError::Fault { fault, .. } = &err else {
            panic!("fault expected, got {err:?}")
        };
        assert_eq!(fault.kind, FaultKind::Fonctionnelle);
        assert_eq!(fault.code(), "R3");
        assert_eq!(fault.faultcode, "S:Server");
        assert_eq!(
            fault.faultstring,
            "fr.gouv.finances.cp.tpa.webservice.exceptions.FonctionnelleErreur"
        );
        assert_eq!(
            fault.libelle.as_deref(),
            Some("Le format du paramètre REFDET n'est pas conforme")
        );
        assert_eq!(fault.descriptif, None);
        assert_eq!(fault.severite, Some(2));
        assert_eq!(err.class(), RetryClass::Permanent);
        assert_eq!(err.kind(), "payfip_fault_r3");

        replay.answer(status, a2.clone());
        let err = client
            .create_payment(&recorded_create_request())
            .await
            .unwrap_err();
        assert_eq!(err.fault_code(), Some("A2"));
        let PayfipError::Fault { fault, .. } = &err else {
            unreachable!()
        };
        // `&#233;` decoded, the trailing space kept.
        assert_eq!(fault.libelle.as_deref(), Some("Adresse mél incorrecte. "));
        assert_eq!(fault.text(), "Adresse mél incorrecte.");
        assert_eq!(err.class(), RetryClass::Permanent);
    }
}

#[tokio::test]
async fn detail_request_and_every_recorded_result() {
    let Some(spec) = spec() else { return };
    let s64 = section(&spec, "### 6.4");
    let request = code_blocks(&s64)[0].clone();
    let idop = IdOp::new(IDOP).unwrap();
    assert_eq!(
        compact(without_declaration(&detail_envelope(&idop))),
        compact(&request)
    );

    let ok_children = backticked(&table_row(&s64, "payment_ok"))
        .into_iter()
        .find(|s| s.starts_with("<dattrans>"))
        .unwrap();
    // "same without `numauto`, `<resultrans>X</resultrans>`".
    let variant = |row: &str| {
        let spans = backticked(&table_row(&s64, row));
        let resultrans = spans
            .iter()
            .find(|s| s.starts_with("<resultrans>"))
            .unwrap();
        let start = ok_children.find("<numauto>").unwrap();
        let end = ok_children.find("</numauto>").unwrap() + "</numauto>".len();
        let without = format!("{}{}", &ok_children[..start], &ok_children[end..]);
        without.replace("<resultrans>P</resultrans>", resultrans)
    };
    // "dattrans 12122019, exer 20, …, idOp …, …": the prose row as elements.
    let sepa_children: String = backticked(&table_row(&s64, "get_info_paiement_ok"))[1]
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once(' ').unwrap();
            let value = if value == "…" { IDOP } else { value };
            format!("<{name}>{value}</{name}>")
        })
        .collect();

    let replay = Replay::start().await;
    let client = client_for(&replay);
    let cases = [
        (ok_children.clone(), Resultrans::P, true),
        (variant("payment_denied"), Resultrans::R, false),
        (variant("payment_cancelled"), Resultrans::A, false),
        (sepa_children, Resultrans::V, true),
    ];
    for (children, expected, paid) in cases {
        replay.answer(200, detail_response(&spec, &children));
        let detail = client.payment_detail(&idop).await.unwrap();
        assert_eq!(detail.resultrans, expected);
        assert_eq!(detail.idop, idop);
        assert_eq!(detail.amount, Money::parse("10.00").unwrap());
        assert_eq!(detail.numcli, "090909");
        assert_eq!(detail.saisie, "T");
        assert_eq!(detail.exer, "20", "the echo is kept as sent, not relied on");
        assert_eq!(
            detail.transaction_at,
            Some(DateTime::parse_from_rfc3339("2019-12-12T13:11:00+01:00").unwrap())
        );
        assert_eq!(detail.numauto.is_some(), paid);
        assert_eq!(detail.resultrans.is_paid(), paid);
        assert_eq!(
            detail.mel.as_ref().map(|m| m.as_str()),
            Some("john.doe@example.com")
        );
        if expected == Resultrans::V {
            assert_eq!(detail.objet.as_deref(), Some("coucou"));
            assert_eq!(detail.refdet, "EFEFAEFG");
        } else {
            assert_eq!(detail.objet, None);
            assert_eq!(detail.refdet, "201912261758460053903194");
        }
    }
    for sent in replay.captured() {
        assert_eq!(compact(without_declaration(&sent.body)), compact(&request));
        assert_valid_payload(
            "detail-request.xml",
            &element(&sent.body, "ns0:recupererDetailPaiementSecurise"),
        );
    }

    // "fault `P1` / `IdOp incorrect.` / severite 2", same for P5.
    for (row, class) in [
        ("get_info_paiement_P1", RetryClass::UnknownOperation),
        ("get_info_paiement_P5", RetryClass::Transient),
    ] {
        let spans = backticked(&table_row(&s64, row));
        let (code, libelle) = (&spans[1], &spans[2]);
        let detail = format!(
            "<ns2:FonctionnelleErreur xmlns:ns2=\"http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/contrat_paiement_securise/PaiementSecuriseService\"><code>{code}</code><descriptif/><libelle>{libelle}</libelle><severite>2</severite></ns2:FonctionnelleErreur>"
        );
        replay.answer(500, fault_with_detail(&spec, &detail));
        let err = client.payment_detail(&idop).await.unwrap_err();
        assert_eq!(err.fault_code(), Some(code.as_str()));
        assert_eq!(err.class(), class, "{code}");
        let PayfipError::Fault { fault, .. } = &err else {
            unreachable!()
        };
        assert_eq!(fault.libelle.as_deref(), Some(libelle.as_str()));
    }

    // An answer about another operation is refused.
    replay.answer(200, detail_response(&spec, &ok_children));
    let other = IdOp::new("4b0eb5b0-b335-11e2-9219-001fe256bdfe").unwrap();
    let err = client.payment_detail(&other).await.unwrap_err();
    assert!(matches!(err, PayfipError::BadResponse { .. }));
}

#[tokio::test]
async fn client_detail_request_and_response() {
    let Some(spec) = spec() else { return };
    let blocks = code_blocks(&section(&spec, "### 6.5"));
    let numcli = NumCli::new("090909").unwrap();
    let envelope = client_envelope(&numcli);
    assert!(envelope.contains(&compact(&blocks[0])), "arg0 as recorded");

    let creer = code_blocks(&section(&spec, "### 6.3"))[1].clone();
    let start = creer.find("<return>").unwrap();
    let end = creer.find("</return>").unwrap() + "</return>".len();
    let response = format!("{}{}{}", &creer[..start], blocks[1], &creer[end..]).replace(
        "creerPaiementSecuriseResponse",
        "recupererDetailClientResponse",
    );

    let replay = Replay::start().await;
    replay.answer(200, response);
    let detail = client_for(&replay).client_detail(&numcli).await.unwrap();
    assert_eq!(detail.numcli, "090909");
    assert_eq!(detail.libelle_n1, "RR COMPOSTEURS INDIVIDUELS");
    assert_eq!(detail.libelle_n2, "POUETPOUET");
    assert_eq!(detail.libelle_n3, "COLLECTE VALORISATION DECHETS");
    assert_eq!(replay.captured()[0].body, envelope);
    assert_valid_payload(
        "client-request.xml",
        &element(&envelope, "ns0:recupererDetailClient"),
    );
}

#[test]
fn classic_urls_of_the_spec() {
    let Some(spec) = spec() else { return };
    let urls: Vec<String> = code_blocks(&section(&spec, "### 6.1"))[0]
        .lines()
        .filter(|l| l.starts_with("https://"))
        .map(str::to_string)
        .collect();
    assert_eq!(urls.len(), 2);
    let base = Url::parse(&GatewayConfig::default().classic_url).unwrap();
    let bounds = GatewayConfig::default().classic_bounds();

    // Second vector: numcli 012345, saisie A, exer 2014, urlcl, 21.54 €.
    let request = ClassicRequest {
        numcli: NumCli::new("012345").unwrap(),
        exer: Some(Exer::new(2014).unwrap()),
        refdet: Refdet::new("130000000000123456").unwrap(),
        amount: Money::parse("21.54").unwrap(),
        mel: Email::new("parent@example.com").unwrap(),
        objet: None,
        urlcl: Some(Url::parse("https://mairie.example/tipi/retour").unwrap()),
        saisie: Saisie::new("A").unwrap(),
    };
    assert_eq!(request.url(&base, bounds).unwrap().as_str(), urls[1]);

    // First vector: same shape with objet, but its numcli `12345` has 5 digits (eopayment's
    // classic backend accepts it; we require the 6 digits DGFiP issues).
    let first = Url::parse(&urls[0]).unwrap();
    let numcli = first.query_pairs().find(|(k, _)| k == "numcli").unwrap().1;
    assert!(NumCli::new(&numcli).is_err());
    let mut padded = ClassicRequest {
        numcli: NumCli::new(&format!("0{numcli}")).unwrap(),
        exer: Some(Exer::new(9999).unwrap()),
        refdet: Refdet::new("999900000000999999").unwrap(),
        amount: Money::parse("123.12").unwrap(),
        mel: Email::new("info@entrouvert.com").unwrap(),
        objet: Some(Objet::new("tout a fait").unwrap()),
        urlcl: None,
        saisie: Saisie::new("T").unwrap(),
    };
    assert_eq!(
        padded.url(&base, bounds).unwrap().as_str(),
        urls[0].replace("numcli=12345", "numcli=012345")
    );
    // The classic cap (9 999.99 € by default) refuses 10 000 €.
    padded.amount = Money::parse("10000.00").unwrap();
    assert!(padded.url(&base, bounds).is_err());
}

#[test]
fn classic_results_of_the_spec() {
    let Some(spec) = spec() else { return };
    let blocks = code_blocks(&section(&spec, "### 6.2"));
    let eop = ClassicResult::parse(blocks[0].trim()).unwrap();
    assert_eq!(eop.resultrans, Resultrans::P);
    assert_eq!(eop.refdet, "999900000000999999");
    assert_eq!(eop.saisie, "T");
    assert_eq!(eop.amount, Money::parse("123.12").unwrap());
    assert!(ClassicResult::parse("foo=bar").is_err());

    // OCA's payload is given as `name=value` pairs separated by spaces.
    let oca: Vec<&str> = blocks[1].split_whitespace().collect();
    let oca = ClassicResult::parse(&oca.join("&")).unwrap();
    assert_eq!(oca.amount, Money::parse("105.22").unwrap());
    assert_eq!(oca.numauto.as_deref(), Some("00000001"));
    assert_eq!(
        oca.transaction_at.unwrap().naive_local().to_string(),
        "2021-05-04 13:25:00"
    );
}

#[test]
fn small_vectors_of_the_spec() {
    let Some(spec) = spec() else { return };
    let s67 = section(&spec, "### 6.7");
    let spans = backticked(&s67);
    let input = spans[0]
        .strip_prefix("normalize_objet('")
        .and_then(|s| s.strip_suffix("')"))
        .unwrap();
    let expected = spans[1].trim_matches('\'');
    assert_eq!(Objet::normalize(input).unwrap().as_str(), expected);

    let date = spans.iter().position(|s| s == "18092025").unwrap();
    let at = encaisse_payfip::datetime::parse_paris(&spans[date], &spans[date + 1]).unwrap();
    assert_eq!(at.to_rfc3339(), "2025-09-18T11:04:00+02:00");

    let bounds = GatewayConfig::default().ws_bounds();
    for pair in ["10.00", "123.12"] {
        let i = spans.iter().position(|s| s == pair).unwrap();
        let cents = bounds.montant(Money::parse(pair).unwrap()).unwrap();
        assert_eq!(cents.to_string(), spans[i + 1]);
    }

    // §6.6: notifications and returns carry only the idop (any case).
    let s66 = code_blocks(&section(&spec, "### 6.6"))[0].clone();
    let forms: Vec<&str> = s66
        .split_whitespace()
        .filter(|w| w.to_ascii_lowercase().starts_with("idop=") || w.contains("?idop="))
        .collect();
    assert_eq!(forms.len(), 4);
    for form in forms {
        let query = form.rsplit_once('?').map(|(_, q)| q).unwrap_or(form);
        let idop = idop_from_form(query).unwrap();
        assert!(idop.as_str() == "b008a85d-9dc9-49a1-a68d-473c4f76f958" || idop.as_str() == "1234");
    }
}
