//! Whether a query is answered from indexes: the pages and reports that must stay fast on a
//! large ledger check their queries with [`unindexed_steps`] in their tests.

use rusqlite::{Connection, Params};

use crate::LedgerError;

/// The steps of `sql`'s plan (`EXPLAIN QUERY PLAN`) whose cost grows with a table: a full
/// scan, or a search on the tenant alone (every row of the tenant). Empty when the query
/// reads only what it returns (through an index or a primary key), whatever the ledger's
/// size.
pub fn unindexed_steps(
    c: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<String>, LedgerError> {
    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let plan: Vec<String> = stmt
        .query_map(params, |r| r.get(3))?
        .collect::<Result<_, _>>()?;
    let indexed = plan.iter().any(|step| {
        step.contains("USING INDEX")
            || step.contains("USING COVERING INDEX")
            || step.contains("USING PRIMARY KEY")
    });
    let mut bad: Vec<String> = plan
        .into_iter()
        .filter(|step| step.starts_with("SCAN ") || step.ends_with("(tenant=?)"))
        .collect();
    if !indexed {
        bad.push(format!("no index used by {sql}"));
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_and_tenant_wide_searches_are_reported() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (tenant TEXT, k TEXT, v INTEGER, PRIMARY KEY (tenant, k));",
        )
        .unwrap();
        let steps = |sql: &str| unindexed_steps(&c, sql, ["a"]).unwrap();
        assert!(steps("SELECT v FROM t WHERE tenant = 'x' AND k = ?1").is_empty());
        assert_eq!(
            steps("SELECT v FROM t WHERE v = ?1").len(),
            2,
            "a scan, no index"
        );
        assert!(!steps("SELECT v FROM t WHERE tenant = ?1").is_empty());
    }
}
