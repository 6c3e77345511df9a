//! Checks a PES Aller recette file against the business rules the XSD does not express, or
//! that the guichet applies before the XSD (`PES_RecetteAller_blocs.html`,
//! `DomaineGlobalAller_blocscommuns.html`; `pes-v2.md` §2): versions, header codes, counts
//! and totals, strictly positive amounts, the ORMC triplet and `Edition` rules, mandatory
//! names for persons, refused text values, payment blocks.
//!
//! Used on encaisse's own output in tests (with the XSD), and to explain why a file from
//! elsewhere (e.g. the real 2011 sample) would be rejected. It complements, and does not
//! replace, validation against the XSD (`encaisse_xml::xsd`).

use encaisse_schemas::Money;

use super::tree::{Element, Tree};
use super::{At, ReadError, unknown};
use crate::config::is_codique;
use crate::text::is_forbidden_value;

/// A rule a file breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub line: u32,
    pub value: Option<String>,
    /// Short rule name (`mt_tva_not_positive`), stable for tests and counting.
    pub rule: &'static str,
    pub message: String,
}

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllerReport {
    pub bordereaux: usize,
    pub pieces: usize,
    pub lines: usize,
    pub findings: Vec<Finding>,
}

impl AllerReport {
    pub fn is_valid(&self) -> bool {
        self.findings.is_empty()
    }

    /// How many findings break `rule`.
    pub fn count(&self, rule: &str) -> usize {
        self.findings.iter().filter(|f| f.rule == rule).count()
    }
}

struct Checker {
    report: AllerReport,
}

impl Checker {
    fn find(
        &mut self,
        at: &At<'_>,
        name: Option<&str>,
        rule: &'static str,
        message: impl Into<String>,
    ) {
        let (path, line, value) = match name.and_then(|n| at.element.child(n).map(|c| (n, c))) {
            Some((n, child)) => (format!("{}/{n}", at.path), child.line, child.value.clone()),
            None => (
                match name {
                    Some(n) => format!("{}/{n}", at.path),
                    None => at.path.clone(),
                },
                at.element.line,
                None,
            ),
        };
        self.report.findings.push(Finding {
            path,
            line,
            value,
            rule,
            message: message.into(),
        });
    }

    fn money(&mut self, at: &At<'_>, name: &str) -> Option<Money> {
        match at.opt_money(name) {
            Ok(m) => m,
            Err(_) => {
                self.find(
                    at,
                    Some(name),
                    "amount_format",
                    "not an amount with a decimal point",
                );
                None
            }
        }
    }

    /// A mandatory amount that must be > 0 (`Base_Montant`).
    fn positive(&mut self, at: &At<'_>, name: &str, rule: &'static str) -> Option<Money> {
        let m = self.money(at, name);
        match m {
            Some(m) if !m.is_positive() => {
                self.find(at, Some(name), rule, format!("{name} must be > 0"));
            }
            None if at.element.child(name).is_none() => {
                self.find(at, Some(name), "missing", format!("{name} is mandatory"));
            }
            _ => {}
        }
        m
    }

    fn text_values(&mut self, at: &At<'_>, names: &[&str]) {
        for name in names {
            if let Some(child) = at.element.child(name)
                && let Some(v) = &child.value
                && is_forbidden_value(v)
            {
                self.find(
                    at,
                    Some(name),
                    "forbidden_text",
                    format!("{v:?} is a value the schema refuses"),
                );
            }
        }
    }
}

/// Checks a parsed PES Aller.
pub fn check_tree(tree: &Tree) -> Result<AllerReport, ReadError> {
    if tree.root.name != "PES_Aller" {
        return Err(unknown(tree));
    }
    let root = At::root(&tree.root);
    let mut c = Checker {
        report: AllerReport::default(),
    };
    let params = root.req("Enveloppe")?.req("Parametres")?;
    if params.opt_str("Version").as_deref() != Some("2") {
        c.find(
            &params,
            Some("Version"),
            "envelope_version",
            "Enveloppe/Parametres/Version must be 2",
        );
    }
    let head = root.req("EnTetePES")?;
    let id_post = head.opt_str("IdPost").unwrap_or_default();
    if !is_codique(&id_post) {
        c.find(&head, Some("IdPost"), "codique", "IdPost must be a codique");
    }
    let id_coll = head.opt_str("IdColl").unwrap_or_default();
    if id_coll.len() != 14 || !id_coll.bytes().all(|b| b.is_ascii_digit()) {
        c.find(
            &head,
            Some("IdColl"),
            "siret",
            "IdColl must be a 14-digit SIRET",
        );
    }
    let cod_col = head.opt_str("CodCol").unwrap_or_default();
    if cod_col.len() != 3 || !cod_col.bytes().all(|b| b.is_ascii_digit()) || cod_col == "000" {
        c.find(
            &head,
            Some("CodCol"),
            "cod_col",
            "CodCol must be exactly 3 digits, not 000",
        );
    }
    let cod_bud = head.opt_str("CodBud").unwrap_or_default();
    let cb = cod_bud.as_bytes();
    if cb.len() != 2
        || !(cb[0].is_ascii_digit() || cb[0].is_ascii_uppercase())
        || !cb[1].is_ascii_digit()
    {
        c.find(
            &head,
            Some("CodBud"),
            "cod_bud",
            "CodBud must match [0-9A-Z][0-9]",
        );
    }
    if let Some(recette) = root.child("PES_RecetteAller") {
        let en_tete = recette.req("EnTeteRecette")?;
        if en_tete.opt_str("IdVer").as_deref() != Some("2") {
            c.find(
                &en_tete,
                Some("IdVer"),
                "recette_version",
                "EnTeteRecette/IdVer must be 2, else the flow is rejected",
            );
        }
        for b in recette.each("Bordereau") {
            check_bordereau(&mut c, &b)?;
        }
    }
    Ok(c.report)
}

/// Reads and checks a PES Aller file (untrusted bytes).
pub fn check_pes_aller(
    bytes: &[u8],
    limits: impl Into<encaisse_xml::tree::Limits>,
) -> Result<AllerReport, ReadError> {
    check_tree(&super::tree::parse(bytes, limits)?)
}

fn check_bordereau(c: &mut Checker, b: &At<'_>) -> Result<(), ReadError> {
    c.report.bordereaux += 1;
    let bloc = b.req("BlocBordereau")?;
    let typ_bord = bloc.opt_str("TypBord").unwrap_or_default();
    if !matches!(typ_bord.as_str(), "01" | "02" | "03" | "06") {
        c.find(
            &bloc,
            Some("TypBord"),
            "typ_bord",
            "only 01, 02, 03 and 06 may be sent",
        );
    }
    match bloc.opt_u64("IdBord") {
        Ok(Some(n)) if (1..=9_999_999).contains(&n) => {}
        _ => c.find(
            &bloc,
            Some("IdBord"),
            "id_bord",
            "IdBord must be 1 to 9999999",
        ),
    }
    let pieces = b.each("Piece");
    let declared = bloc.opt_u64("NbrPce").ok().flatten();
    if declared != Some(pieces.len() as u64) {
        c.find(
            &bloc,
            Some("NbrPce"),
            "nbr_pce",
            format!("NbrPce must be the number of pièces ({})", pieces.len()),
        );
    }
    let declared_total = c.positive(&bloc, "MtBordHt", "mt_bord_ht_not_positive");
    if let (Ok(Some(emitted)), Ok(Some(asp))) =
        (bloc.opt_date("DteBordEm"), bloc.opt_date("DteAsp"))
        && asp < emitted
    {
        c.find(
            &bloc,
            Some("DteAsp"),
            "dte_asp",
            "DteAsp must not be before DteBordEm",
        );
    }
    let bord_tva = c.money(&bloc, "MtBordTVA");
    if bord_tva.is_some_and(|m| !m.is_positive()) {
        c.find(
            &bloc,
            Some("MtBordTVA"),
            "mt_tva_not_positive",
            "MtBordTVA, when present, must be > 0",
        );
    }
    let mut sum = Money::ZERO;
    let mut any_tva = false;
    for p in &pieces {
        let (piece_sum, piece_tva) = check_piece(c, p, &typ_bord)?;
        sum = sum.checked_add(piece_sum).unwrap_or(sum);
        any_tva |= piece_tva;
    }
    if let Some(total) = declared_total
        && total != sum
    {
        c.find(
            &bloc,
            Some("MtBordHt"),
            "mt_bord_ht_sum",
            format!("MtBordHt must be the sum of the lines' MtHT ({sum})"),
        );
    }
    if bord_tva.is_some_and(|m| m.is_positive()) && !any_tva {
        c.find(
            &bloc,
            Some("MtBordTVA"),
            "mt_bord_tva_without_lines",
            "MtBordTVA needs at least one line with MtTVA > 0",
        );
    }
    Ok(())
}

fn check_piece(c: &mut Checker, p: &At<'_>, typ_bord: &str) -> Result<(Money, bool), ReadError> {
    c.report.pieces += 1;
    let bloc = p.req("BlocPiece")?;
    match bloc.opt_u64("IdPce") {
        Ok(Some(n)) if n > 0 => {}
        _ => c.find(&bloc, Some("IdPce"), "id_pce", "IdPce must be > 0"),
    }
    let typ_pce = bloc.opt_str("TypPce").unwrap_or_default();
    let nat_pce = bloc.opt_str("NatPce").unwrap_or_default();
    if matches!(typ_pce.as_str(), "08" | "13") {
        c.find(
            &bloc,
            Some("TypPce"),
            "typ_pce",
            "TypPce 08 and 13 are retour-only",
        );
    }
    let ormc = typ_pce == "15";
    if (typ_bord == "06") != ormc || (ormc && nat_pce != "01") {
        c.find(
            &bloc,
            Some("TypPce"),
            "triplet",
            format!("triplet {typ_bord}/{typ_pce}/{nat_pce}: ORMC is exactly 06/15/01"),
        );
    }
    if let Some(edition) = bloc.opt_str("Edition") {
        let allowed = if ormc {
            matches!(edition.as_str(), "03" | "06")
        } else {
            matches!(edition.as_str(), "01" | "02" | "04" | "05")
        };
        if !allowed {
            c.find(
                &bloc,
                Some("Edition"),
                "edition",
                "Edition 03/06 are for ORMC titres only, 01/02/04/05 for the others",
            );
        }
        if matches!(edition.as_str(), "01" | "02" | "03" | "05" | "06")
            && bloc.child("PJRef").is_none()
        {
            c.find(
                &bloc,
                Some("PJRef"),
                "edition_pj",
                "an ASAP to print needs a PJ reference",
            );
        }
    }
    if ormc {
        for name in ["NumDette", "Per", "Cle1", "Cle2"] {
            if bloc.child(name).is_none() {
                c.find(
                    &bloc,
                    Some(name),
                    "ormc_keys",
                    format!("{name} is expected on an ORMC article"),
                );
            }
        }
    }
    c.text_values(&bloc, &["ObjPce", "CodServ"]);
    let mut sum = Money::ZERO;
    let mut any_tva = false;
    let lines = p.each("LigneDePiece");
    let mut debtors: Vec<&Element> = Vec::new();
    for l in &lines {
        c.report.lines += 1;
        let bl = l.req("BlocLignePiece")?;
        let info = bl.req("InfoLignePiece")?;
        if let Some(m) = c.positive(&info, "MtHT", "mt_ht_not_positive") {
            sum = sum.checked_add(m).unwrap_or(sum);
        }
        let tva = c.money(&info, "MtTVA");
        if let Some(t) = tva {
            if t.is_positive() {
                any_tva = true;
            } else {
                c.find(
                    &info,
                    Some("MtTVA"),
                    "mt_tva_not_positive",
                    "MtTVA must be absent or > 0 (MtTVA V=\"0\" is refused)",
                );
            }
        }
        c.text_values(&info, &["ObjLignePce"]);
        if info
            .opt_str("Majo")
            .as_deref()
            .is_some_and(|m| m == "1" || m == "true")
            && bl
                .child("RattachPiece")
                .and_then(|r| r.opt_str("NatPceOrig"))
                .as_deref()
                != Some("05")
        {
            c.find(
                &info,
                Some("Majo"),
                "majo",
                "Majo = 1 needs RattachPiece with NatPceOrig 05",
            );
        }
        let tiers = l.each("Tiers");
        if let Some(prel) = bl.child("InfoPrelevementSEPA") {
            c.positive(&prel, "MtPrel", "mt_prel_not_positive");
            if prel.opt_str("NatPrel").as_deref() == Some("01")
                && !tiers.iter().any(|t| {
                    t.child("CpteBancaire")
                        .is_some_and(|b| b.child("IBAN").is_some() || b.child("IdCpte").is_some())
                })
            {
                c.find(
                    &prel,
                    Some("NatPrel"),
                    "debit_bank_account",
                    "NatPrel 01 needs the debtor's bank account (Tiers/CpteBancaire)",
                );
            }
        }
        for t in &tiers {
            check_tiers(c, t);
            debtors.push(t.element);
        }
    }
    if ormc {
        let first_debtor = debtors.first().and_then(|t| t.child("InfoTiers"));
        if debtors
            .iter()
            .any(|t| !same_values(t.child("InfoTiers"), first_debtor))
        {
            c.find(
                &bloc,
                None,
                "ormc_one_debtor",
                "an ORMC titre must have one debtor",
            );
        }
    }
    Ok((sum, any_tva))
}

/// Same names and values, whatever the lines.
fn same_values(a: Option<&Element>, b: Option<&Element>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.name == b.name
                && a.value == b.value
                && a.children.len() == b.children.len()
                && a.children
                    .iter()
                    .zip(&b.children)
                    .all(|(x, y)| same_values(Some(x), Some(y)))
        }
        (None, None) => true,
        _ => false,
    }
}

fn check_tiers(c: &mut Checker, t: &At<'_>) {
    let Some(info) = t.child("InfoTiers") else {
        c.find(t, Some("InfoTiers"), "missing", "InfoTiers is mandatory");
        return;
    };
    c.text_values(
        &info,
        &["Civilite", "Nom", "Prenom", "ComplNom", "RefTiers"],
    );
    if info.opt_str("CatTiers").as_deref() == Some("01") {
        for name in ["Civilite", "Prenom"] {
            if info.opt_str(name).is_none() {
                c.find(
                    &info,
                    Some(name),
                    "person_name",
                    format!("{name} is mandatory for a person (CatTiers 01)"),
                );
            }
        }
        if !matches!(info.opt_str("NatJur").as_deref(), Some("01" | "02")) {
            c.find(
                &info,
                Some("NatJur"),
                "cat_nat",
                "CatTiers 01 goes with NatJur 01 or 02",
            );
        }
    }
    if let Some(address) = t.child("Adresse") {
        c.text_values(&address, &["Adr1", "Adr2", "Adr3", "Ville"]);
        let cp = address.opt_str("CP").unwrap_or_default();
        if cp.len() != 5 || !cp.bytes().all(|b| b.is_ascii_digit()) {
            c.find(
                &address,
                Some("CP"),
                "postal_code",
                "CP must be 5 digits (99999 abroad)",
            );
        }
    }
    if let Some(bank) = t.child("CpteBancaire")
        && let Some(iban) = bank.opt_str("IBAN")
        && encaisse_schemas::identifiers::Iban::parse(&iban)
            .map(|i| i.as_str() != iban)
            .unwrap_or(true)
    {
        c.find(
            &bank,
            Some("IBAN"),
            "iban",
            "IBAN invalid or not in upper case (the flow is rejected)",
        );
    }
}
