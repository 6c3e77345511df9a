//! Streams a checked [`Pain008`] as XML with quick-xml, elements in the exact order of the
//! ISO XSDs (`pain.008.001.02.xsd` / `.08.xsd`; spec §2). UTF-8 without byte-order mark,
//! no `xsi:schemaLocation` (some banks reject it), `CreDtTm` without fraction nor offset.

use quick_xml::Writer;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::message::{Block, Pain008, Totals};
use crate::model::{
    Amendment, Collection, OriginalDebtorAccount, Pain008Version, PartyId, PostalAddress,
};

/// The XML could not be produced (only an I/O failure of the sink can cause it).
#[derive(Debug, thiserror::Error)]
#[error("cannot write pain.008: {0}")]
pub struct WriteError(#[from] std::io::Error);

/// A thin layer over quick-xml's writer: start/end/leaf elements with escaped text.
struct Out<W: std::io::Write> {
    writer: Writer<W>,
}

impl<W: std::io::Write> Out<W> {
    fn start(&mut self, name: &str) -> std::io::Result<()> {
        self.writer.write_event(Event::Start(BytesStart::new(name)))
    }

    fn end(&mut self, name: &str) -> std::io::Result<()> {
        self.writer.write_event(Event::End(BytesEnd::new(name)))
    }

    fn leaf(&mut self, name: &str, text: &str) -> std::io::Result<()> {
        self.start(name)?;
        self.writer
            .write_event(Event::Text(BytesText::from_escaped(partial_escape(text))))?;
        self.end(name)
    }

    /// `<a><b>…</b></a>` for a path of single children ending in a leaf.
    fn nested(&mut self, path: &[&str], text: &str) -> std::io::Result<()> {
        let Some((leaf, parents)) = path.split_last() else {
            return Ok(());
        };
        for p in parents {
            self.start(p)?;
        }
        self.leaf(leaf, text)?;
        for p in parents.iter().rev() {
            self.end(p)?;
        }
        Ok(())
    }
}

impl Pain008 {
    /// The file's bytes. Identical inputs give identical bytes.
    pub fn to_xml(&self) -> Result<Vec<u8>, WriteError> {
        let mut bytes = Vec::with_capacity(2048 + 1200 * self.totals.count as usize);
        self.write_to(&mut bytes)?;
        Ok(bytes)
    }

    /// Streams the file to `sink`.
    pub fn write_to<W: std::io::Write>(&self, sink: W) -> Result<(), WriteError> {
        let mut out = Out {
            writer: Writer::new_with_indent(sink, b' ', 2),
        };
        out.writer
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let namespace = self.settings.version.namespace();
        let document = BytesStart::new("Document").with_attributes([("xmlns", namespace.as_str())]);
        out.writer.write_event(Event::Start(document))?;
        out.start("CstmrDrctDbtInitn")?;
        self.write_group_header(&mut out)?;
        for block in &self.blocks {
            self.write_block(&mut out, block)?;
        }
        out.end("CstmrDrctDbtInitn")?;
        out.end("Document")?;
        out.writer.get_mut().write_all(b"\n")?;
        Ok(())
    }

    fn write_group_header<W: std::io::Write>(&self, out: &mut Out<W>) -> std::io::Result<()> {
        out.start("GrpHdr")?;
        out.leaf("MsgId", &self.header.message_id)?;
        out.leaf(
            "CreDtTm",
            &self
                .header
                .created_at
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string(),
        )?;
        write_totals(out, &self.totals)?;
        out.start("InitgPty")?;
        out.leaf("Nm", &self.initiating_party.name)?;
        match &self.initiating_party.id {
            None => {}
            Some(PartyId::Siret(siret)) => {
                out.start("Id")?;
                out.start("OrgId")?;
                out.start("Othr")?;
                out.leaf("Id", siret)?;
                out.nested(&["SchmeNm", "Prtry"], "SIRET")?;
                out.end("Othr")?;
                out.end("OrgId")?;
                out.end("Id")?;
            }
            Some(PartyId::Ics(ics)) => out.nested(&["Id", "OrgId", "Othr", "Id"], ics.as_str())?,
        }
        out.end("InitgPty")?;
        out.end("GrpHdr")
    }

    fn write_block<W: std::io::Write>(
        &self,
        out: &mut Out<W>,
        block: &Block,
    ) -> std::io::Result<()> {
        let version = self.settings.version;
        let creditor = &self.creditor;
        out.start("PmtInf")?;
        out.leaf("PmtInfId", &block.payment_info_id)?;
        out.leaf("PmtMtd", "DD")?;
        out.leaf(
            "BtchBookg",
            if self.settings.batch_booking {
                "true"
            } else {
                "false"
            },
        )?;
        write_totals(out, &block.totals)?;
        out.start("PmtTpInf")?;
        out.nested(&["SvcLvl", "Cd"], "SEPA")?;
        // One scheme per file: communes collect from families, always CORE (B2B on a
        // consumer account is rejected AC13).
        out.nested(&["LclInstrm", "Cd"], "CORE")?;
        out.leaf("SeqTp", block.sequence.as_str())?;
        out.end("PmtTpInf")?;
        out.leaf(
            "ReqdColltnDt",
            &block.due_date.format("%Y-%m-%d").to_string(),
        )?;
        out.nested(&["Cdtr", "Nm"], &creditor.name)?;
        out.nested(&["CdtrAcct", "Id", "IBAN"], creditor.iban.as_str())?;
        write_agent(
            out,
            "CdtrAgt",
            creditor.bic.as_ref().map(|b| b.as_str()),
            version,
        )?;
        if let Some(ultimate) = &creditor.ultimate {
            out.start("UltmtCdtr")?;
            out.leaf("Nm", &ultimate.name)?;
            if let Some(id) = &ultimate.id {
                out.nested(&["Id", "OrgId", "Othr", "Id"], id)?;
            }
            out.end("UltmtCdtr")?;
        }
        out.leaf("ChrgBr", "SLEV")?;
        out.start("CdtrSchmeId")?;
        write_scheme_id(out, creditor.ics.as_str())?;
        out.end("CdtrSchmeId")?;
        for collection in &block.collections {
            write_collection(out, collection, version)?;
        }
        out.end("PmtInf")
    }
}

fn write_totals<W: std::io::Write>(out: &mut Out<W>, totals: &Totals) -> std::io::Result<()> {
    out.leaf("NbOfTxs", &totals.count.to_string())?;
    out.leaf("CtrlSum", &totals.control_sum())
}

/// `Id/PrvtId/Othr/{Id, SchmeNm/Prtry = SEPA}`: the ICS, always as a private id (spec §4.1).
fn write_scheme_id<W: std::io::Write>(out: &mut Out<W>, ics: &str) -> std::io::Result<()> {
    out.start("Id")?;
    out.start("PrvtId")?;
    out.start("Othr")?;
    out.leaf("Id", ics)?;
    out.nested(&["SchmeNm", "Prtry"], "SEPA")?;
    out.end("Othr")?;
    out.end("PrvtId")?;
    out.end("Id")
}

/// `FinInstnId/BIC` (`BICFI` in .08), or `FinInstnId/Othr/Id = NOTPROVIDED`.
fn write_agent<W: std::io::Write>(
    out: &mut Out<W>,
    element: &str,
    bic: Option<&str>,
    version: Pain008Version,
) -> std::io::Result<()> {
    match bic {
        Some(bic) => out.nested(&[element, "FinInstnId", version.bic_element()], bic),
        None => out.nested(&[element, "FinInstnId", "Othr", "Id"], "NOTPROVIDED"),
    }
}

fn write_collection<W: std::io::Write>(
    out: &mut Out<W>,
    c: &Collection,
    version: Pain008Version,
) -> std::io::Result<()> {
    out.start("DrctDbtTxInf")?;
    out.nested(&["PmtId", "EndToEndId"], &c.end_to_end_id)?;
    let amount = BytesStart::new("InstdAmt").with_attributes([("Ccy", "EUR")]);
    out.writer.write_event(Event::Start(amount))?;
    out.writer
        .write_event(Event::Text(BytesText::new(&c.amount.to_dot_string())))?;
    out.end("InstdAmt")?;
    out.start("DrctDbtTx")?;
    out.start("MndtRltdInf")?;
    out.leaf("MndtId", c.mandate.rum.as_str())?;
    out.leaf(
        "DtOfSgntr",
        &c.mandate.signed_on.format("%Y-%m-%d").to_string(),
    )?;
    match &c.mandate.amendment {
        None => out.leaf("AmdmntInd", "false")?,
        Some(amendment) => {
            out.leaf("AmdmntInd", "true")?;
            write_amendment(out, amendment)?;
        }
    }
    out.end("MndtRltdInf")?;
    out.end("DrctDbtTx")?;
    write_agent(
        out,
        "DbtrAgt",
        c.debtor.bic.as_ref().map(|b| b.as_str()),
        version,
    )?;
    out.start("Dbtr")?;
    out.leaf("Nm", &c.debtor.name)?;
    if let Some(address) = &c.debtor.address {
        write_address(out, address)?;
    }
    out.end("Dbtr")?;
    out.nested(&["DbtrAcct", "Id", "IBAN"], c.debtor.iban.as_str())?;
    if let Some(ultimate) = &c.ultimate_debtor {
        out.nested(&["UltmtDbtr", "Nm"], ultimate)?;
    }
    if !c.remittance.is_empty() {
        out.nested(&["RmtInf", "Ustrd"], &c.remittance)?;
    }
    out.end("DrctDbtTxInf")
}

fn write_amendment<W: std::io::Write>(out: &mut Out<W>, a: &Amendment) -> std::io::Result<()> {
    out.start("AmdmntInfDtls")?;
    if let Some(rum) = &a.original_rum {
        out.leaf("OrgnlMndtId", rum.as_str())?;
    }
    if a.original_creditor_name.is_some() || a.original_ics.is_some() {
        out.start("OrgnlCdtrSchmeId")?;
        if let Some(name) = &a.original_creditor_name {
            out.leaf("Nm", &encaisse_schemas::text::to_sepa(name))?;
        }
        if let Some(ics) = &a.original_ics {
            write_scheme_id(out, ics.as_str())?;
        }
        out.end("OrgnlCdtrSchmeId")?;
    }
    match &a.original_debtor_account {
        None => {}
        Some(OriginalDebtorAccount::Iban(iban)) => {
            out.nested(&["OrgnlDbtrAcct", "Id", "IBAN"], iban.as_str())?
        }
        Some(OriginalDebtorAccount::SameMandateNewDebtorAccount) => {
            out.nested(&["OrgnlDbtrAcct", "Id", "Othr", "Id"], "SMNDA")?
        }
    }
    out.end("AmdmntInfDtls")
}

fn write_address<W: std::io::Write>(out: &mut Out<W>, a: &PostalAddress) -> std::io::Result<()> {
    out.start("PstlAdr")?;
    for (name, value) in [
        ("StrtNm", &a.street),
        ("BldgNb", &a.building_number),
        ("PstCd", &a.postal_code),
    ] {
        if let Some(value) = value {
            out.leaf(name, value)?;
        }
    }
    out.leaf("TwnNm", &a.town)?;
    out.leaf("Ctry", &a.country)?;
    out.end("PstlAdr")
}
