use std::collections::HashMap;

use encaisse_ledger::testing::Fixture;

use super::*;

encaisse_ledger::on_both_backends!(
    months_and_days_are_those_of_paris,
    the_fast_path_agrees_with_the_rows_on_a_random_ledger,
);

/// The commissions query reads `payfip_operation`, which the payfip area's PostgreSQL schema
/// creates; until that area is on PostgreSQL, a PostgreSQL test gives it the columns the
/// query reads (nothing when the real table is there).
async fn with_payfip_operation(f: &Fixture) {
    if f.ledger.backend() != "postgres" {
        return;
    }
    f.ledger
        .transact(|tx| {
            tx.execute_script(
                "CREATE TABLE IF NOT EXISTS payfip_operation (
                     tenant text NOT NULL, exercice bigint NOT NULL, number text NOT NULL,
                     outcome text, commission_cents bigint, resolved_at text)",
            )
        })
        .await
        .unwrap();
}

#[test]
fn months_are_bounded_in_paris_time() {
    let m = month_bounds("2026-03").unwrap();
    // 1 March 00:00 CET = 28 February 23:00 UTC; 1 April 00:00 CEST = 31 March 22:00 UTC.
    assert_eq!(
        (m.start_hour.as_str(), m.end_hour.as_str()),
        ("2026-02-28T23", "2026-03-31T22")
    );
    assert_eq!(
        (m.first_day.as_str(), m.next_first_day.as_str()),
        ("2026-03-01", "2026-04-01")
    );
    let m = month_bounds("2026-10").unwrap();
    assert_eq!(
        (m.start_hour.as_str(), m.end_hour.as_str()),
        ("2026-09-30T22", "2026-10-31T23")
    );
    let m = month_bounds("2026-12").unwrap();
    assert_eq!(
        (m.start_hour.as_str(), m.end_hour.as_str()),
        ("2026-11-30T23", "2026-12-31T23")
    );
    assert_eq!(m.next_first_day, "2027-01-01");
    for bad in ["2026-13", "2026-00", "2026-3", "26-03", "2026/03", "x"] {
        assert!(month_bounds(bad).is_err(), "{bad}");
    }
}

#[test]
fn hours_fall_on_their_paris_day_across_daylight_saving() {
    for (hour, day) in [
        ("2026-01-31T22", "2026-01-31"),
        ("2026-01-31T23", "2026-02-01"),
        // Summer time from 29 March 01:00 UTC: 22:00 UTC is midnight in Paris.
        ("2026-03-28T23", "2026-03-29"),
        ("2026-03-31T21", "2026-03-31"),
        ("2026-03-31T22", "2026-04-01"),
        // Winter time from 25 October 01:00 UTC: 23:00 UTC is midnight again.
        ("2026-10-25T22", "2026-10-25"),
        ("2026-10-25T23", "2026-10-26"),
    ] {
        assert_eq!(paris_day(hour), day, "{hour}");
    }
}

fn ledger() -> (tempfile::TempDir, encaisse_ledger::Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = encaisse_ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
    (dir, ledger)
}

/// Every query is answered from indexes: no full scan of a table, whatever its size.
#[test]
fn every_query_uses_indexes() {
    let (_dir, ledger) = ledger();
    let month = month_bounds("2026-03").unwrap();
    ledger
        .read_blocking(|c| {
            for (sql, bounds) in QUERIES {
                let params = month_params("vitry", &month, bounds);
                let bad = encaisse_ledger::plan::unindexed_steps(
                    c,
                    sql,
                    encaisse_ledger::rusqlite::params_from_iter(&params),
                )?;
                assert!(bad.is_empty(), "{sql}\n{bad:#?}");
            }
            Ok(())
        })
        .unwrap();
}

fn group(budget: &str, activity: Option<&str>) -> Group {
    Group {
        budget: budget.into(),
        activity: activity.map(str::to_string),
    }
}

fn figures_of<'a>(r: &'a Reconciliation, g: &Group) -> &'a Figures {
    &r.lines
        .iter()
        .find(|l| l.group == *g)
        .unwrap_or_else(|| panic!("no line {g:?} in {:#?}", r.lines))
        .figures
}

/// Figures per budget, activity and channel, to the cent, from rows of every source; the
/// totals are the sums of the lines.
#[tokio::test]
async fn figures_come_from_every_source_to_the_cent() {
    let (_dir, ledger) = ledger();
    ledger
        .transact(|tx| {
            tx.execute_script(
                "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                     first_line, last_line, budget, collection, total_cents, message_id,
                     published_at, activity) VALUES
                   ('vitry', 'vitry/2026/A1', 'h', 'r', 'f', 2, 2, 'principal', 'titres', 7013, 'm1', '2026-03-05T08:00:00Z', 'CANTINE'),
                   ('vitry', 'vitry/2026/A2', 'h', 'r', 'f', 3, 3, 'principal', 'titres', 3350, 'm2', '2026-03-31T21:59:59Z', NULL),
                   ('vitry', 'vitry/2026/B1', 'h', 'r', 'f', 4, 4, 'eau', 'regie', 12000, 'm3', '2026-03-10T08:00:00Z', 'EAU'),
                   ('vitry', 'vitry/2026/C1', 'h', 'r', 'f', 5, 5, 'principal', 'titres', 999, 'm4', '2026-03-31T22:00:00Z', 'CANTINE'),
                   ('ivry', 'ivry/2026/A1', 'h', 'r', 'f', 2, 2, 'principal', 'titres', 5000, 'm5', '2026-03-05T08:00:00Z', 'CANTINE');
                 INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents,
                     channel, source, reference, seen_at, confirms, reversed_at) VALUES
                   ('vitry', 'payfip:1', 'vitry/2026/A1', 7013, 'CB', 'payfip', 'x', '2026-03-06T10:00:00Z', NULL, NULL),
                   ('vitry', 'helios:1', 'vitry/2026/A1', 7013, 'CB', 'helios', 'x', '2026-03-09T10:00:00Z', 'payfip:1', NULL),
                   ('vitry', 'sepa:1', 'vitry/2026/B1', 12000, 'PRELEVEMENT', 'bank', 'x', '2026-03-15T10:00:00Z', NULL, NULL),
                   ('vitry', 'regie:1', 'vitry/2026/A2', 1000, 'GUICHET', 'regie', 'x', '2026-03-31T12:00:00Z', NULL, NULL),
                   ('vitry', 'regie:2', 'vitry/2026/Z9', 500, 'GUICHET', 'regie', 'x', '2026-03-12T12:00:00Z', NULL, NULL);
                 UPDATE polyfac_payment SET reversed_at = '2026-03-20T10:00:00Z'
                     WHERE payment_id = 'sepa:1';
                 INSERT INTO payfip_operation (op_id, tenant, exercice, number, channel, state,
                     active, payment_id, numcli, exer, refdet, amount_cents, mode, created_at,
                     outcome, commission_cents, resolved_at) VALUES
                   ('op1', 'vitry', 2026, 'A1', 'ws', 'done', 0, 'payfip:1', '1', 2026, 'A1', 7013, 'test', '2026-03-06T09:59:00Z', 'P', 18, '2026-03-06T10:00:00Z'),
                   ('op2', 'vitry', 2026, 'A2', 'ws', 'done', 0, NULL, '1', 2026, 'A2', 3350, 'test', '2026-03-06T09:59:00Z', 'A', NULL, '2026-03-06T10:00:00Z');
                 INSERT INTO sepa_collection (tenant, invoice_key, attempt, rum_key, due_date,
                     sequence, status, planned_at, amount_cents, outcome_code, outcome_on) VALUES
                   ('vitry', 'vitry/2026/B1', 1, 'R1', '2026-03-15', 'FRST', 'returned', '2026-03-01T00:00:00Z', 12000, 'AM04', '2026-03-20');",
            )
        })
        .await
        .unwrap();
    ledger
        .inspect(|tx| {
            let r = reconcile(tx, "vitry", &month_bounds("2026-03").unwrap())?;
            let cantine = figures_of(&r, &group("principal", Some("CANTINE")));
            assert_eq!(
                (cantine.invoices, cantine.invoiced_cents),
                (1, 7013),
                "C1 was published on 1 April in Paris"
            );
            assert_eq!(
                cantine.collected_cents[&Channel::Card],
                7013,
                "confirmation not counted twice"
            );
            assert_eq!(cantine.commission_cents, 18);
            assert_eq!(cantine.outstanding_cents, 0);
            let unknown = figures_of(&r, &group("principal", None));
            assert_eq!((unknown.invoices, unknown.invoiced_cents), (1, 3350));
            assert_eq!(unknown.collected_cents[&Channel::Counter], 1000);
            assert_eq!(unknown.outstanding_cents, 3350 - 1000);
            let eau = figures_of(&r, &group("eau", Some("EAU")));
            assert_eq!(eau.collected_cents[&Channel::DirectDebit], 12000);
            assert_eq!(
                (eau.rejects, eau.rejected_cents, eau.reversed_cents),
                (1, 12000, 12000)
            );
            assert_eq!(
                eau.outstanding_cents, 12000,
                "a reversed payment no longer pays"
            );
            let orphan = figures_of(&r, &group("?", None));
            assert_eq!(orphan.collected_cents[&Channel::Counter], 500);
            assert_eq!(r.totals.invoiced_cents, 22363);
            assert_eq!(r.totals.collected_total(), 20513);
            assert_eq!(r.totals.outstanding_cents, 14350);
            assert_eq!(r.daily.len(), 4);
            let csv = to_csv(&r);
            assert!(
                csv.lines()
                    .last()
                    .unwrap()
                    .starts_with("vitry,2026-03,TOTAL,,3,223.63,70.13,"),
                "{csv}"
            );
            assert!(
                csv.contains("\nvitry,2026-03,principal,CANTINE,1,70.13,"),
                "{csv}"
            );
            Ok::<_, LedgerError>(())
        })
        .await
        .unwrap();
}

/// A payment at 23:30 UTC on 31 January is made on 1 February in Paris: it counts in
/// February and on the chart's 1 February; the same at the daylight-saving boundaries.
async fn months_and_days_are_those_of_paris(f: &Fixture) {
    with_payfip_operation(f).await;
    let ledger = &f.ledger;
    ledger
        .transact(|tx| {
            tx.execute_script(
                "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents,
                     channel, source, reference, seen_at) VALUES
                   ('vitry', 'p1', 'vitry/2026/A1', 100, 'CB', 'payfip', 'x', '2026-01-31T23:30:00.000Z'),
                   ('vitry', 'p2', 'vitry/2026/A1', 200, 'CB', 'payfip', 'x', '2026-01-31T22:59:59.999Z'),
                   ('vitry', 'p3', 'vitry/2026/A1', 400, 'CB', 'payfip', 'x', '2026-03-31T22:00:00.000Z'),
                   ('vitry', 'p4', 'vitry/2026/A1', 800, 'CB', 'payfip', 'x', '2026-03-31T21:59:59.999Z'),
                   ('vitry', 'p5', 'vitry/2026/A1', 1600, 'CB', 'payfip', 'x', '2026-10-31T23:00:00.000Z'),
                   ('vitry', 'p6', 'vitry/2026/A1', 3200, 'CB', 'payfip', 'x', '2026-10-31T22:30:00.000Z');",
            )
        })
        .await
        .unwrap();
    let collected = |month: &str| {
        let bounds = month_bounds(month).unwrap();
        ledger.inspect(move |tx| reconcile(tx, "vitry", &bounds))
    };
    let january = collected("2026-01").await.unwrap();
    assert_eq!(january.totals.collected_total(), 200);
    let february = collected("2026-02").await.unwrap();
    assert_eq!(february.totals.collected_total(), 100);
    assert_eq!(
        february.daily,
        [Daily {
            day: "2026-02-01".into(),
            channel: Channel::Card,
            cents: 100
        }]
    );
    let total = |r: Result<Reconciliation, LedgerError>| r.unwrap().totals.collected_total();
    assert_eq!(total(collected("2026-03").await), 800);
    let april = collected("2026-04").await.unwrap();
    assert_eq!(april.totals.collected_total(), 400);
    assert_eq!(april.daily[0].day, "2026-04-01");
    assert_eq!(total(collected("2026-10").await), 3200);
    assert_eq!(total(collected("2026-11").await), 1600);
}

/// A small deterministic generator (xorshift), so that a failing ledger can be made again.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// A ledger time between mid-January and mid-May 2026, often near a Paris midnight.
    fn time(&mut self) -> String {
        let day = 15 + self.below(120) as i64;
        let second = if self.below(3) == 0 {
            // 21:00–23:59 UTC: midnight in Paris, summer or winter.
            21 * 3600 + self.below(3 * 3600) as i64
        } else {
            self.below(86_400) as i64
        };
        let at = chrono::DateTime::from_timestamp(1_767_225_600 + day * 86_400 + second, 0)
            .unwrap()
            + chrono::Duration::milliseconds(self.below(1000) as i64);
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// The Paris month and day of a ledger time.
fn paris(at: &str) -> (String, String) {
    let t = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .with_timezone(&Paris);
    (
        t.format("%Y-%m").to_string(),
        t.format("%Y-%m-%d").to_string(),
    )
}

/// The reconciliation computed the slow way, from every invoice and payment row, by the
/// definitions (the summaries and their triggers play no part).
fn direct(tx: &mut Tx<'_>, tenant: &str, month: &str) -> Reconciliation {
    type Invoice = (String, Option<String>, i64, String);
    let invoices: HashMap<String, Invoice> = tx
        .query_all(
            "SELECT invoice_key, budget, activity, total_cents, published_at FROM polyfac_issued
             WHERE tenant = ?1",
            &[&tenant],
            |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))),
        )
        .unwrap()
        .into_iter()
        .collect();
    let payments: Vec<(String, i64, String, String, Option<String>)> = tx
        .query_all(
            "SELECT invoice_key, amount_cents, channel, seen_at, reversed_at FROM polyfac_payment
             WHERE tenant = ?1 AND confirms IS NULL",
            &[&tenant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let group_of = |key: &str| match invoices.get(key) {
        Some((budget, activity, _, _)) => group(budget, activity.as_deref()),
        None => group("?", None),
    };
    let mut groups: BTreeMap<Group, Figures> = BTreeMap::new();
    let mut daily: BTreeMap<(String, Channel), i64> = BTreeMap::new();
    for (key, (_, _, total, published_at)) in &invoices {
        if paris(published_at).0 != month {
            continue;
        }
        let paid: i64 = payments
            .iter()
            .filter(|p| &p.0 == key && p.4.is_none())
            .map(|p| p.1)
            .sum();
        let f = groups.entry(group_of(key)).or_default();
        f.invoices += 1;
        f.invoiced_cents += total;
        f.outstanding_cents += total - paid;
    }
    for (key, cents, channel, seen_at, reversed_at) in &payments {
        let (seen_month, seen_day) = paris(seen_at);
        let channel = Channel::from_canal(channel);
        if seen_month == month {
            *groups
                .entry(group_of(key))
                .or_default()
                .collected_cents
                .entry(channel)
                .or_default() += cents;
            *daily.entry((seen_day, channel)).or_default() += cents;
        }
        if reversed_at.as_deref().map(|at| paris(at).0).as_deref() == Some(month) {
            groups.entry(group_of(key)).or_default().reversed_cents += cents;
        }
    }
    assemble(tenant, month, groups, daily)
}

/// On a random ledger — payments before and after their invoice, confirmations, reversals,
/// an invoice moved to another budget, rows deleted, times near Paris midnights and
/// daylight-saving changes — the summaries give exactly what the rows give. On PostgreSQL
/// the summaries are kept by the plpgsql triggers, on SQLite by SQLite's: the same rows,
/// the same figures.
async fn the_fast_path_agrees_with_the_rows_on_a_random_ledger(f: &Fixture) {
    with_payfip_operation(f).await;
    let ledger = &f.ledger;
    for seed in [0x9e37_79b9_7f4a_7c15_u64, 42, 2026] {
        ledger
            .transact(move |tx| {
                let mut rng = Rng(seed);
                for step in 0..600u64 {
                    let tenant = ["vitry", "ivry"][rng.below(2) as usize];
                    let key = format!("{tenant}/2026/F{}", rng.below(200));
                    if rng.below(3) == 0 {
                        tx.execute(
                            "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id,
                                 file, first_line, last_line, budget, collection, total_cents,
                                 message_id, published_at, activity)
                             VALUES (?1, ?2, 'h', 'r', 'f', 1, 1, ?3, 'titres', ?4, 'm', ?5, ?6)
                             ON CONFLICT DO NOTHING",
                            &[
                                &tenant,
                                &key,
                                &["principal", "eau"][rng.below(2) as usize],
                                &(1 + rng.below(20_000) as i64),
                                &rng.time(),
                                &[Some("CANTINE"), Some("CRECHE"), None][rng.below(3) as usize],
                            ],
                        )?;
                    } else {
                        let id = format!("{seed}:{step}");
                        // One payment in five confirms an earlier one on the same invoice.
                        let confirms: Option<String> = if rng.below(5) == 0 {
                            tx.query_opt(
                                "SELECT payment_id FROM polyfac_payment
                                 WHERE tenant = ?1 AND invoice_key = ?2 AND confirms IS NULL
                                 ORDER BY payment_id LIMIT 1",
                                &[&tenant, &key],
                                |r| r.get(0),
                            )?
                        } else {
                            None
                        };
                        tx.execute(
                            "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key,
                                 amount_cents, channel, source, reference, seen_at, confirms)
                             VALUES (?1, ?2, ?3, ?4, ?5, 'payfip', 'x', ?6, ?7)",
                            &[
                                &tenant,
                                &id,
                                &key,
                                &(1 + rng.below(20_000) as i64),
                                &["CB", "PRELEVEMENT", "TIP", "GUICHET", "AUTRE"]
                                    [rng.below(5) as usize],
                                &rng.time(),
                                &confirms,
                            ],
                        )?;
                        if rng.below(6) == 0 {
                            tx.execute(
                                "UPDATE polyfac_payment SET reversed_at = ?3
                                 WHERE tenant = ?1 AND payment_id = ?2",
                                &[&tenant, &id, &rng.time()],
                            )?;
                        }
                    }
                }
                tx.execute_script(
                    "UPDATE polyfac_issued SET budget = 'eau', activity = 'PISCINE'
                         WHERE invoice_key IN ('vitry/2026/F7', 'ivry/2026/F8');
                     DELETE FROM polyfac_payment WHERE payment_id LIKE '%7' OR payment_id LIKE '%:13';
                     DELETE FROM polyfac_issued WHERE invoice_key LIKE '%/F1_';
                     UPDATE polyfac_payment SET confirmed_by = 'x' WHERE payment_id LIKE '%5';",
                )?;
                Ok::<_, LedgerError>(())
            })
            .await
            .unwrap();
        ledger
            .inspect(|tx| {
                let mut seen = Figures::default();
                let mut unknown_invoice = false;
                for tenant in ["vitry", "ivry"] {
                    for month in ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"] {
                        let fast = reconcile(tx, tenant, &month_bounds(month).unwrap())?;
                        assert_eq!(fast, direct(tx, tenant, month), "{tenant} {month}");
                        seen.add(&fast.totals);
                        unknown_invoice |= fast.lines.iter().any(|l| l.group.budget == "?");
                    }
                }
                // The ledger exercised every path the summaries keep.
                assert!(seen.invoices > 100 && seen.reversed_cents > 0, "{seen:?}");
                assert!(seen.outstanding_cents != 0 && seen.collected_total() > 0);
                assert!(unknown_invoice);
                Ok::<_, LedgerError>(())
            })
            .await
            .unwrap();
    }
}

#[test]
fn csv_fields_are_quoted_and_formulas_neutralised() {
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("=1+1"), "'=1+1");
    assert_eq!(csv_field("plain"), "plain");
}
