//! The ASAP the DGFiP prints for a titre (`pes-v2.md` §5): a PJ of the PES Aller file.
//!
//! * Titre ordinaire, `Edition 01`: a "PES Facture ASAP" (`TypeFact 09`) in a PJ of type 006.
//!   The dossier says the PES_Facture is "encapsulé dans un PESPJ"; the schema has no
//!   global `PES_Facture` element, so the PJ holds a whole `PES_Aller` document whose only
//!   domain is `PES_Facture` (it validates against `PES_Aller.xsd` like the file itself).
//!   One PJ per titre, one `FactureIndiv` per PJ (`RefTitre` links it to the titre). It
//!   carries the TIP SEPA choice (`ModeRecouvrement`), the ICS or numéro émetteur
//!   (`RefBdf`), the PayFiP identifier (`CodeTipi` + `AdrTipi`) of invoices payable online,
//!   and the talon optique lines (see [`super::talon`]).
//! * ORMC article, `Edition 06`: the invoice PDF made by the commune, PJ of type 010.
//!
//! PJ contents are gzip-compressed then base64-encoded (`PES_PJAller_blocs.html`); the gzip
//! header carries no name and no time, so the bytes are reproducible.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encaisse_schemas::Money;
use encaisse_schemas::events::InvoiceIssued;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use rust_decimal::Decimal;

use super::prepare::{Asap, Piece};
use super::recette::{
    ALLER_NS, config_text as text, write_debtor_address, write_headers, write_person,
};
use super::{Bordereau, WriteError};
use crate::config::{HeliosTenantConfig, PostalAddress};
use crate::text::pes_text;
use crate::xmlw::{PesWriter, amount, date};

/// Whether the titre of `invoice` gets a DGFiP-printed ASAP under `config` (the full rules,
/// with their errors, are in `prepare`).
pub(crate) fn wanted(config: &HeliosTenantConfig, invoice: &InvoiceIssued) -> bool {
    config
        .asap
        .mode
        .wants_asap(invoice.payment_mode, invoice.online_payable)
}

/// gzip then base64, reusing one compressor for every PJ of a file (a deflate state is
/// hundreds of kilobytes: allocating one per ASAP dominated the writing time).
pub(crate) struct Gzip {
    deflate: DeflateEncoder<Vec<u8>>,
}

/// gzip header (RFC 1952): deflate, no flags, no modification time, OS "unknown" — nothing
/// that changes from one run to the next.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl Gzip {
    /// The fastest level: an ASAP PES Facture is a few kilobytes of repetitive XML, level 1
    /// still shrinks it about fourfold, and the default level made deflate a third of the
    /// PES writing time (`encaisse-bench`'s "PES writing alone": files 9 % larger, writing
    /// 1.5–1.9× faster with TIP titres; docs/benchmark.md).
    pub(crate) fn new() -> Self {
        Gzip {
            deflate: DeflateEncoder::new(Vec::new(), Compression::fast()),
        }
    }

    /// `bytes` gzip-compressed, then base64 (standard alphabet, padded, one line).
    pub(crate) fn base64(&mut self, bytes: &[u8]) -> std::io::Result<String> {
        self.deflate.write_all(bytes)?;
        // Finishes this stream, hands its bytes back and readies the compressor.
        let body = self.deflate.reset(Vec::new())?;
        let mut crc = Crc::new();
        crc.update(bytes);
        let mut gz = Vec::with_capacity(GZIP_HEADER.len() + body.len() + 8);
        gz.extend_from_slice(&GZIP_HEADER);
        gz.extend_from_slice(&body);
        gz.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the input size modulo 2^32.
        gz.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        Ok(STANDARD.encode(gz))
    }
}

/// Writes the `PJ` of a titre's ASAP into `PES_PJ`.
pub(crate) fn write_pj<W: Write>(
    w: &mut PesWriter<W>,
    gzip: &mut Gzip,
    bordereau: &Bordereau<'_>,
    piece: &Piece<'_>,
    asap: &Asap<'_>,
) -> Result<(), WriteError> {
    let (mime, content, description) = match asap.pdf {
        Some(pdf) => (
            "application/pdf",
            gzip.base64(pdf)?,
            format!("FACTURE ASAP ORMC ARTICLE {}", piece.id_pce),
        ),
        None => (
            "text/xml",
            gzip.base64(&pes_facture_document(bordereau, piece, asap)?)?,
            format!("AVIS DES SOMMES A PAYER TITRE {}", piece.id_pce),
        ),
    };
    w.open("PJ")?;
    w.open("Contenu")?;
    w.text_element("Fichier", ("MIMEType", mime), &content)?;
    w.close("Contenu")?;
    w.leaf("IdUnique", &asap.id_unique)?;
    w.leaf("NomPJ", &asap.pj_name)?;
    w.leaf("TypePJ", asap.pj_type)?;
    w.leaf("Description", &description)?;
    w.close("PJ")?;
    Ok(())
}

fn text_opt(config: &HeliosTenantConfig, value: Option<&str>, max: usize) -> Option<String> {
    value.and_then(|v| pes_text(v, max, config.text_style))
}

/// `TAdresseFacture`.
fn write_address<W: Write>(
    w: &mut PesWriter<W>,
    config: &HeliosTenantConfig,
    field: &str,
    address: &PostalAddress,
    with_street: bool,
) -> Result<(), WriteError> {
    w.open("Adresse")?;
    w.leaf("TypAdr", "1")?;
    if with_street {
        w.leaf_opt(
            "Adr1",
            text_opt(config, address.complement.as_deref(), 38).as_deref(),
        )?;
        w.leaf(
            "Adr2",
            &text(config, &format!("{field}.street"), &address.street, 38)?,
        )?;
    }
    w.leaf_opt(
        "Adr3",
        text_opt(config, address.locality.as_deref(), 38).as_deref(),
    )?;
    w.leaf(
        "CP",
        &text(
            config,
            &format!("{field}.postal_code"),
            &address.postal_code,
            5,
        )?,
    )?;
    w.leaf(
        "Ville",
        &text(config, &format!("{field}.city"), &address.city, 38)?,
    )?;
    w.leaf("CodRes", "0")?;
    w.close("Adresse")?;
    Ok(())
}

/// The `PES_Aller` document holding the `PES_Facture` ASAP of one titre.
pub(crate) fn pes_facture_document(
    bordereau: &Bordereau<'_>,
    piece: &Piece<'_>,
    asap: &Asap<'_>,
) -> Result<Vec<u8>, WriteError> {
    let config = bordereau.config;
    let a = &config.asap;
    let mut w = PesWriter::start(Vec::new(), config.output_encoding, config.indent_spaces)?;
    w.open_root("PES_Aller", ALLER_NS)?;
    write_headers(&mut w, bordereau, &asap.pj_name)?;
    w.open("PES_Facture")?;
    w.leaf("IdVer", "2")?;
    w.leaf("Annee", &bordereau.exercice.to_string())?;
    w.leaf("TypeFact", "09")?;
    w.leaf("Date", &date(bordereau.date))?;

    w.open("Emetteur")?;
    w.open("InfoTiers")?;
    w.leaf("CatTiers", &a.emitter_cat_tiers)?;
    w.leaf("NatJur", &a.emitter_nat_jur)?;
    w.leaf("TypTiers", "20")?;
    w.leaf(
        "Nom",
        &text(config, "asap.emitter_name", &a.emitter_name, 38)?,
    )?;
    w.close("InfoTiers")?;
    write_address(
        &mut w,
        config,
        "asap.emitter_address",
        &a.emitter_address,
        true,
    )?;
    w.open("InfoSuppl")?;
    w.leaf_opt(
        "NumTel",
        text_opt(config, a.phone.as_deref(), 20).as_deref(),
    )?;
    w.leaf_opt(
        "HorairesOuv",
        text_opt(config, a.opening_hours.as_deref(), 38).as_deref(),
    )?;
    w.leaf_opt("CodeTipi", asap.code_tipi)?;
    w.leaf_opt(
        "AdresseMelEmetteur",
        a.email.as_deref().map(str::trim).filter(|e| !e.is_empty()),
    )?;
    if asap.code_tipi.is_some() {
        w.leaf("AdrTipi", a.payfip_url.trim())?;
    }
    w.leaf("RefBdf", &asap.ref_bdf)?;
    w.close("InfoSuppl")?;
    w.open("Signataire")?;
    w.open("Personne")?;
    w.leaf(
        "Nom",
        &text(
            config,
            "asap.signatory_last_name",
            &a.signatory_last_name,
            38,
        )?,
    )?;
    w.leaf(
        "Prenom",
        &text(
            config,
            "asap.signatory_first_name",
            &a.signatory_first_name,
            38,
        )?,
    )?;
    w.close("Personne")?;
    w.leaf(
        "Role",
        &text(config, "asap.signatory_role", &a.signatory_role, 50)?,
    )?;
    w.close("Signataire")?;
    w.close("Emetteur")?;

    // The payment centre (type 25): fixed name, no Adr1/Adr2 (dossier).
    w.open("Tiers")?;
    w.open("InfoTiers")?;
    w.leaf("CatTiers", "20")?;
    w.leaf("NatJur", "07")?;
    w.leaf("TypTiers", "25")?;
    w.leaf("Nom", "CENTRE D'ENCAISSEMENT")?;
    w.leaf("ComplNom", "DES FINANCES PUBLIQUES")?;
    w.close("InfoTiers")?;
    write_address(
        &mut w,
        config,
        "asap.payment_centre",
        &a.payment_centre,
        false,
    )?;
    w.close("Tiers")?;
    // The Centre des finances publiques (type 26).
    w.open("Tiers")?;
    w.open("InfoTiers")?;
    w.leaf("CatTiers", "20")?;
    w.leaf("NatJur", "07")?;
    w.leaf("TypTiers", "26")?;
    w.leaf(
        "Nom",
        &text(
            config,
            "asap.public_finance_centre_name",
            &a.public_finance_centre_name,
            38,
        )?,
    )?;
    w.close("InfoTiers")?;
    write_address(
        &mut w,
        config,
        "asap.public_finance_centre_address",
        &a.public_finance_centre_address,
        true,
    )?;
    w.close("Tiers")?;

    write_facture_indiv(&mut w, bordereau, piece, asap)?;
    w.empty("Nomenclatures")?;
    w.close("PES_Facture")?;
    w.close_root("PES_Aller")?;
    Ok(w.finish()?)
}

/// Quantity and unit price when they give the line amount exactly and fit the schema
/// (`Base_Quantite`: ≤ 6 digits, ≤ 4 decimals, > 0); otherwise the ASAP shows the amount.
fn quantity_and_price(
    quantity: Decimal,
    unit_price: Money,
    line_amount: Money,
) -> Option<(String, String)> {
    let q = quantity.normalize();
    if q <= Decimal::ZERO || q.scale() > 4 || !unit_price.is_positive() {
        return None;
    }
    // `totalDigits` counts the digits of the unscaled value (1.5 → 15 → 2).
    if q.mantissa().unsigned_abs().to_string().len() > 6 {
        return None;
    }
    let product = unit_price.times(q).ok()?;
    let rounded = Money::round_half_up(product).ok()?;
    (rounded == line_amount).then(|| (q.to_string(), amount(unit_price)))
}

fn write_facture_indiv<W: Write>(
    w: &mut PesWriter<W>,
    bordereau: &Bordereau<'_>,
    piece: &Piece<'_>,
    asap: &Asap<'_>,
) -> Result<(), WriteError> {
    let config = bordereau.config;
    let invoice = piece.invoice;
    let d = &piece.debtor;
    w.open("FactureIndiv")?;
    w.leaf("DateEmission", &date(bordereau.date))?;
    let number = text(config, "invoice.number", &invoice.invoice.number, 50)?;
    w.leaf("NumeroFacture", &number)?;
    w.open("Debiteur")?;
    w.open("InfoTiers")?;
    write_person(w, d)?;
    w.close("InfoTiers")?;
    write_debtor_address(w, d)?;
    // The account printed on the TIP, when the family gave one (its mandate).
    if asap.tip
        && let Some(mandate) = &invoice.mandate
        && let Some(holder) = pes_text(&mandate.holder, 32, config.text_style)
    {
        let bic = mandate
            .bic
            .as_ref()
            .filter(|b| b.satisfies(encaisse_schemas::identifiers::BicFlavour::Iso2009));
        w.open("CpteBancaire")?;
        w.leaf_opt("BIC", bic.map(|b| b.as_str()))?;
        w.leaf("IBAN", mandate.iban.as_str())?;
        w.leaf("TitCpte", &holder)?;
        w.close("CpteBancaire")?;
    }
    w.close("Debiteur")?;
    let object = piece.object.clone().unwrap_or_else(|| number.clone());
    w.leaf("Objet", &object)?;
    for (order, line) in piece.lines.iter().enumerate() {
        let source = &invoice.lines[line.source];
        w.open("LigneFacture")?;
        w.leaf("Date", &date(invoice.issued_on))?;
        let label = line.object.clone().unwrap_or_else(|| object.clone());
        w.leaf("Libelle", &label)?;
        match quantity_and_price(source.quantity, source.unit_price, line.amount) {
            Some((quantity, unit_price)) => {
                w.leaf("Quantite", &quantity)?;
                w.leaf("MtUnitaire", &unit_price)?;
            }
            None => w.leaf("MtBase", &amount(line.amount))?,
        }
        w.leaf("MtHT", &amount(line.amount))?;
        w.leaf("TauxTVA", "0")?;
        w.leaf("MtTVA", "0.00")?;
        w.leaf("MtTTC", &amount(line.amount))?;
        w.leaf("Ordre", &(order + 1).to_string())?;
        w.close("LigneFacture")?;
    }
    w.open("TotalAPayer")?;
    w.leaf("MtTotalHT", &amount(piece.total))?;
    w.leaf("MtTotalTVA", "0.00")?;
    w.leaf("MtTotalTTC", &amount(piece.total))?;
    w.close("TotalAPayer")?;
    w.open("RefTitre")?;
    w.leaf("Exercice", &bordereau.exercice.to_string())?;
    w.leaf("NumBordereau", &bordereau.id_bord.to_string())?;
    w.leaf("NumTitre", &piece.id_pce.to_string())?;
    w.leaf("NumLigne", "1")?;
    w.close("RefTitre")?;
    if let Some(talon) = &asap.talon {
        w.open("TalonOptique2Lignes")?;
        w.leaf("Ligne1", &talon.line1)?;
        w.leaf("Ligne2", &talon.line2)?;
        w.close("TalonOptique2Lignes")?;
    }
    let a = &config.asap;
    w.leaf(
        "ModalitesReglement",
        &text(config, "asap.payment_terms", &a.payment_terms, 250)?,
    )?;
    w.leaf_opt(
        "ModalitesContestation",
        text_opt(config, a.dispute_terms.as_deref(), 420).as_deref(),
    )?;
    w.leaf("ModeRecouvrement", if asap.tip { "0" } else { "1" })?;
    w.leaf(
        "ConditionsGen",
        &text(
            config,
            "asap.general_conditions",
            &a.general_conditions,
            250,
        )?,
    )?;
    w.close("FactureIndiv")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_base64_round_trips_and_is_reproducible() {
        let data = b"<n:PES_Aller>hello</n:PES_Aller>".repeat(20);
        let mut gzip = Gzip::new();
        let encoded = gzip.base64(&data).unwrap();
        // A reused compressor gives the same bytes, also after another document.
        assert_eq!(encoded, gzip.base64(&data).unwrap());
        let other = gzip.base64(b"other").unwrap();
        assert_eq!(encoded, gzip.base64(&data).unwrap());
        assert_eq!(encoded, Gzip::new().base64(&data).unwrap());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&STANDARD.decode(&other).unwrap()[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, b"other");
        let compressed = STANDARD.decode(&encoded).unwrap();
        assert_eq!(&compressed[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(&compressed[4..8], &[0, 0, 0, 0], "no modification time");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn quantities_are_shown_only_when_exact() {
        let price = Money::parse("3.35").unwrap();
        assert_eq!(
            quantity_and_price(Decimal::new(2, 0), price, Money::parse("6.70").unwrap()),
            Some(("2".into(), "3.35".into()))
        );
        // 1.5 × 3.35 = 5.025 → 5.03: exact after rounding.
        assert_eq!(
            quantity_and_price(Decimal::new(15, 1), price, Money::parse("5.03").unwrap()),
            Some(("1.5".into(), "3.35".into()))
        );
        assert_eq!(
            quantity_and_price(Decimal::new(2, 0), price, Money::parse("7.00").unwrap()),
            None
        );
        assert_eq!(
            quantity_and_price(
                Decimal::new(1_234_567, 0),
                price,
                Money::parse("1.00").unwrap()
            ),
            None
        );
        assert_eq!(
            quantity_and_price(Decimal::new(12345, 5), price, Money::parse("1.00").unwrap()),
            None
        );
        assert_eq!(
            quantity_and_price(Decimal::ZERO, price, Money::parse("1.00").unwrap()),
            None
        );
    }
}
