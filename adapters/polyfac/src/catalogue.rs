//! What a tenant bills: its budgets, activities, products and régies, indexed for lookups
//! while reading an export. Built once per tenant from the configuration; every reference
//! between entries is checked on construction, so enrichment never fails on a dangling one.

use std::collections::HashMap;
use std::sync::Arc;

use encaisse_schemas::tenant::{Activity, Budget, ConfigIssue, Product, Regie};
use encaisse_schemas::{CollectionPath, TenantId};

/// The tenant vocabulary the adapter validates and enriches against.
#[derive(Debug, Clone)]
pub struct TenantCatalogue {
    tenant: TenantId,
    budgets: HashMap<String, Arc<Budget>>,
    activities: HashMap<String, Arc<Activity>>,
    products: HashMap<String, Arc<Product>>,
    regies: HashMap<String, Arc<Regie>>,
}

impl TenantCatalogue {
    /// Indexes the tenant's entries; refuses duplicates and dangling references (an activity's
    /// budget or régie, a product's activity), naming each under `tenants.<id>`.
    pub fn new(
        tenant: TenantId,
        budgets: Vec<Budget>,
        activities: Vec<Activity>,
        products: Vec<Product>,
        regies: Vec<Regie>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let prefix = format!("tenants.{tenant}");
        let budgets = index(&mut issues, &prefix, "budgets", budgets, |b| &b.code);
        let activities = index(&mut issues, &prefix, "activities", activities, |a| &a.code);
        let products = index(&mut issues, &prefix, "products", products, |p| &p.code);
        let regies = index(&mut issues, &prefix, "regies", regies, |r| &r.code);
        for activity in activities.values() {
            let at = format!("{prefix}.activities.{}", activity.code);
            if !budgets.contains_key(&activity.budget) {
                issues.push(ConfigIssue::new(
                    format!("{at}.budget"),
                    format!("unknown budget {:?}", activity.budget),
                ));
            }
            match (&activity.collection, &activity.regie) {
                (CollectionPath::Regie, None) => issues.push(ConfigIssue::new(
                    format!("{at}.regie"),
                    "a régie activity must name its régie",
                )),
                (_, Some(regie)) if !regies.contains_key(regie) => issues.push(ConfigIssue::new(
                    format!("{at}.regie"),
                    format!("unknown régie {regie:?}"),
                )),
                _ => {}
            }
        }
        for product in products.values() {
            if !activities.contains_key(&product.activity) {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.products.{}.activity", product.code),
                    format!("unknown activity {:?}", product.activity),
                ));
            }
        }
        if issues.is_empty() {
            Ok(TenantCatalogue {
                tenant,
                budgets,
                activities,
                products,
                regies,
            })
        } else {
            issues.sort_by(|a, b| a.field.cmp(&b.field));
            Err(issues)
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn activity(&self, code: &str) -> Option<&Arc<Activity>> {
        self.activities.get(code)
    }

    pub fn product(&self, code: &str) -> Option<&Arc<Product>> {
        self.products.get(code)
    }

    pub fn budget(&self, code: &str) -> Option<&Arc<Budget>> {
        self.budgets.get(code)
    }

    pub fn regie(&self, code: &str) -> Option<&Arc<Regie>> {
        self.regies.get(code)
    }
}

fn index<T>(
    issues: &mut Vec<ConfigIssue>,
    prefix: &str,
    kind: &str,
    items: Vec<T>,
    key: impl Fn(&T) -> &String,
) -> HashMap<String, Arc<T>> {
    let mut map = HashMap::with_capacity(items.len());
    for item in items {
        let code = key(&item).clone();
        if map.insert(code.clone(), Arc::new(item)).is_some() {
            issues.push(ConfigIssue::new(
                format!("{prefix}.{kind}.{code}"),
                "code is defined twice",
            ));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(code: &str) -> Budget {
        Budget {
            code: code.into(),
            cod_bud: "00".into(),
            cod_col: "123".into(),
            siret: "21940081700014".into(),
            label: code.into(),
            payfip_numcli: None,
        }
    }

    #[test]
    fn dangling_references_are_reported() {
        let tenant = TenantId::new("vitry").unwrap();
        let activities = vec![Activity {
            code: "CRECHE".into(),
            budget: "nope".into(),
            collection: CollectionPath::Regie,
            regie: None,
            online_payment: true,
        }];
        let products = vec![Product {
            code: "X".into(),
            activity: "GHOST".into(),
            cod_prod_loc: "1".into(),
            nature: "7066".into(),
            fonction: None,
        }];
        let issues = TenantCatalogue::new(
            tenant,
            vec![budget("principal"), budget("principal")],
            activities,
            products,
            vec![],
        )
        .unwrap_err();
        let fields: Vec<_> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tenants.vitry.activities.CRECHE.budget",
                "tenants.vitry.activities.CRECHE.regie",
                "tenants.vitry.budgets.principal",
                "tenants.vitry.products.X.activity",
            ]
        );
    }
}
