//! The matching rule of payment sightings (DESIGN §1, docs/polyfac.md "Reconciliation").
//!
//! A payment may be reported twice: PayFiP's result, then days later Hélios' émargement
//! (`OrgEma` 10, TIPI) for the same titre; a direct debit sent by the régie, then confirmed.
//! A new `payment.received` **confirms** an earlier sighting — and writes no second `PAYE`
//! line — when the earlier one:
//! * is about the same invoice and has the same amount (to the cent);
//! * was reported by another source (`payfip`, `helios`, `bank`, `regie`): two sightings from
//!   one source with different payment ids are two payments (a family that paid twice);
//! * has a compatible channel ([`channels_compatible`]);
//! * is a primary sighting not yet confirmed nor reversed (one confirmation per payment).
//!
//! Among several candidates the first seen wins. A sighting matching nothing is a new
//! payment: its own `PAYE` line.

use encaisse_schemas::Channel;

use super::export_store::Sighting;

/// The family of a channel: the means of payment, as the different reporters name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Means {
    /// Online through PayFiP: card or one-off debit (Hélios reports both as TIPI, `CB`).
    Online,
    /// Recurrent SEPA direct debit.
    DirectDebit,
    /// TIP SEPA slip.
    Tip,
    /// Recorded at the Trésorerie or the régie (cash, cheque…).
    Counter,
}

fn means(channel: Channel) -> Means {
    match channel {
        Channel::Cb | Channel::PrelevementUnique => Means::Online,
        Channel::Prelevement => Means::DirectDebit,
        Channel::Tip => Means::Tip,
        Channel::Guichet | Channel::Autre => Means::Counter,
    }
}

/// Whether two sightings' channels can describe the same payment: the same means of
/// payment. PayFiP's `CB` and `PRELEVEMENT_UNIQUE` match Hélios' TIPI émargement (`CB`);
/// `PRELEVEMENT` matches `PRELEVEMENT`; `GUICHET` and `AUTRE` match each other.
pub fn channels_compatible(a: Channel, b: Channel) -> bool {
    means(a) == means(b)
}

/// The earlier sighting `new` confirms, if any (`candidates`: the invoice's open primary
/// sightings, first seen first).
pub fn confirmed_by<'a>(new: &Sighting, candidates: &'a [Sighting]) -> Option<&'a Sighting> {
    candidates.iter().find(|c| {
        c.payment_id != new.payment_id
            && c.invoice_key == new.invoice_key
            && c.amount_cents == new.amount_cents
            && c.source != new.source
            && channels_compatible(c.channel, new.channel)
            && c.confirms.is_none()
            && c.confirmed_by.is_none()
            && !c.reversed
    })
}

#[cfg(test)]
mod tests {
    use encaisse_schemas::PaymentSource;

    use super::*;

    fn sighting(id: &str, cents: i64, channel: Channel, source: PaymentSource) -> Sighting {
        Sighting {
            payment_id: id.into(),
            invoice_key: "vitry/2026/F1".into(),
            amount_cents: cents,
            channel,
            source,
            reference: String::new(),
            confirms: None,
            confirmed_by: None,
            reversed: false,
        }
    }

    #[test]
    fn helios_emargement_confirms_the_payfip_payment() {
        let payfip = sighting("payfip:1", 5025, Channel::Cb, PaymentSource::Payfip);
        let helios = sighting(
            "helios:2026/1/1/1/1",
            5025,
            Channel::Cb,
            PaymentSource::Helios,
        );
        let found = confirmed_by(&helios, std::slice::from_ref(&payfip));
        assert_eq!(found.map(|s| s.payment_id.as_str()), Some("payfip:1"));
        // A one-off debit through PayFiP is TIPI for Hélios too.
        let sdd = sighting(
            "payfip:3",
            5025,
            Channel::PrelevementUnique,
            PaymentSource::Payfip,
        );
        assert!(confirmed_by(&helios, &[sdd]).is_some());
    }

    #[test]
    fn no_match_across_amounts_sources_or_means() {
        let payfip = sighting("payfip:1", 5025, Channel::Cb, PaymentSource::Payfip);
        let other_amount = sighting("helios:x", 5000, Channel::Cb, PaymentSource::Helios);
        assert!(confirmed_by(&other_amount, std::slice::from_ref(&payfip)).is_none());
        let second_payfip = sighting("payfip:2", 5025, Channel::Cb, PaymentSource::Payfip);
        assert!(
            confirmed_by(&second_payfip, std::slice::from_ref(&payfip)).is_none(),
            "two PayFiP payments are two payments"
        );
        let cheque = sighting("helios:y", 5025, Channel::Guichet, PaymentSource::Helios);
        assert!(confirmed_by(&cheque, std::slice::from_ref(&payfip)).is_none());
        let mut used = payfip.clone();
        used.confirmed_by = Some("helios:z".into());
        let helios = sighting("helios:w", 5025, Channel::Cb, PaymentSource::Helios);
        assert!(
            confirmed_by(&helios, &[used]).is_none(),
            "one confirmation per payment"
        );
    }

    #[test]
    fn first_seen_wins() {
        let a = sighting("payfip:a", 5025, Channel::Cb, PaymentSource::Payfip);
        let b = sighting("regie:b", 5025, Channel::Cb, PaymentSource::Regie);
        let helios = sighting("helios:1", 5025, Channel::Cb, PaymentSource::Helios);
        assert_eq!(
            confirmed_by(&helios, &[a, b]).map(|s| s.payment_id.as_str()),
            Some("payfip:a")
        );
    }
}
