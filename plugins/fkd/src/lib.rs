//! `fkd`: forward KL(T||S) on the ground truth + MLE (auxiliary cross-entropy on the ground truth).

use kidbench_kd::sdk::{FixedKd, Fkl};

kidbench_kd::export_method!(
    FixedKd<Fkl>,
    "fkd",
    "forward KL(T||S) on the ground truth + MLE"
);

#[cfg(test)]
mod tests {
    use kidbench_plugin_host::check::{assert_conforms, Property};

    /// Every conformance property holds, and the loss is the shared closed form of forward KL(T||S) at
    /// temperature 2 plus 0.5 x MLE on the check's batch.
    #[test]
    fn passes_plugin_check_as_fkl_plus_mle() {
        let r = assert_conforms(
            super::kidbench_plugin_root(),
            &[("temperature", "2"), ("mle_weight", "0.5")],
        );
        let d = r.finding(Property::Divergence).expect("divergence");
        assert!(d.get("fkl.expected").is_some(), "{r}");
        assert_eq!(r.plugin, "fkd");
    }
}
