//! Stage 1, accept: the first look at a job (its `Created` condition, warnings about fields
//! that will be ignored) and the check of what CEL could not see (a spec the operator cannot
//! run fails the job with `TFJobInvalidSpec`).

use super::PlanConfig;
use super::conditions::{self, kind, reason};
use super::pass::Pass;
use super::{EventKind, Outcome};
use crate::api::TFJobSpec;
use crate::api::defaults::{EffectiveRunPolicy, NormalizedSpec, SpecError, normalize};

/// On the job's first pass: the `Created` condition, and a Warning for each field that will be
/// overwritten or ignored.
pub(super) fn first_look(pass: &mut Pass<'_>, spec: &TFJobSpec, run_policy: &EffectiveRunPolicy) {
    if !pass.is_first() {
        return;
    }
    let message = format!("TFJob {} is created.", pass.id.name);
    let now = pass.now;
    conditions::set(
        &mut pass.status,
        kind::CREATED,
        true,
        reason::CREATED,
        message,
        now,
    );
    pass.plan.outcomes.push(Outcome::Created);
    let overridden = template_restart_policies(spec);
    if !overridden.is_empty() {
        pass.plan.event(
            EventKind::Warning,
            "SetPodTemplateRestartPolicy",
            format!(
                "Restart policy in pod template will be overwritten by restart policy in replica spec ({})",
                overridden.join(", ")
            ),
        );
    }
    for field in &run_policy.overridden_legacy_fields {
        pass.plan.event(
            EventKind::Warning,
            "LegacyFieldIgnored",
            format!(
                "{field} is ignored because spec.runPolicy sets the same field; remove one of them"
            ),
        );
    }
}

/// Replica keys whose pod template sets its own restartPolicy.
fn template_restart_policies(spec: &TFJobSpec) -> Vec<&str> {
    spec.tf_replica_specs
        .iter()
        .filter(|(_, replica)| {
            replica
                .template
                .as_ref()
                .and_then(|t| t.spec().ok()?.spec)
                .is_some_and(|s| s.restart_policy.is_some())
        })
        .map(|(key, _)| key.as_str())
        .collect()
}

/// The spec with defaults applied, or `None` after failing the job with the reason.
pub(super) fn runnable_spec(
    pass: &mut Pass<'_>,
    spec: &TFJobSpec,
    cfg: &PlanConfig,
) -> Option<NormalizedSpec> {
    match normalize(spec, cfg.default_clean_pod_policy) {
        Ok(normalized) if normalized.total_replicas() > i64::from(cfg.max_replicas_per_job) => {
            let message = format!(
                "TFJob {} asks for {} pods, more than this operator's limit of {} per job (--max-replicas-per-job)",
                pass.key(),
                normalized.total_replicas(),
                cfg.max_replicas_per_job
            );
            pass.fail(reason::TOO_MANY_REPLICAS, EventKind::Warning, message);
            None
        }
        Ok(normalized) => Some(normalized),
        Err(error) => {
            fail_invalid(pass, &error);
            None
        }
    }
}

fn fail_invalid(pass: &mut Pass<'_>, error: &SpecError) {
    let message = format!("TFJob {} has an invalid spec: {error}", pass.key());
    pass.fail(reason::INVALID_SPEC, EventKind::Warning, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::builder::tfjob;
    use crate::api::defaults::effective_run_policy;
    use jiff::Timestamp;

    fn cfg() -> PlanConfig {
        crate::settings::RunSettings::defaults()
            .controller_config()
            .plan
    }

    #[test]
    fn a_job_over_the_replica_limit_fails_without_building_anything() {
        let job = tfjob("huge")
            .uid("u")
            .namespace("ns")
            .ps(1)
            .workers(i32::MAX)
            .evaluator(i32::MAX)
            .build();
        let mut pass = Pass::start(&job, &[], &[], Timestamp::UNIX_EPOCH);
        assert!(runnable_spec(&mut pass, &job.spec, &cfg()).is_none());
        let plan = pass.into_plan(false);
        assert_eq!(plan.outcomes, vec![Outcome::Failed]);
        assert!(plan.changes.is_empty());
        let failed = plan
            .status
            .expect("Failed")
            .conditions
            .pop()
            .expect("a condition");
        assert_eq!(failed.reason.as_deref(), Some(reason::TOO_MANY_REPLICAS));
        assert_eq!(
            failed.message.as_deref(),
            Some(
                "TFJob ns/huge asks for 4294967295 pods, more than this operator's limit of 20000 per job (--max-replicas-per-job)"
            )
        );
    }

    fn first_pass(job: &crate::api::TFJob) -> super::super::Plan {
        let mut pass = Pass::start(job, &[], &[], Timestamp::UNIX_EPOCH);
        let rp = effective_run_policy(&job.spec, crate::api::CleanPodPolicy::Running);
        first_look(&mut pass, &job.spec, &rp);
        pass.into_plan(false)
    }

    #[test]
    fn the_first_look_sets_created_once_and_counts_it() {
        let job = tfjob("a").workers(1).build();
        let plan = first_pass(&job);
        let status = plan.status.expect("Created");
        assert_eq!(status.conditions[0].type_, kind::CREATED);
        assert_eq!(plan.outcomes, vec![Outcome::Created]);
        assert!(plan.events.is_empty());
        let mut seen = job.clone();
        seen.status = Some(status);
        assert!(
            first_pass(&seen).outcomes.is_empty(),
            "only on the first pass"
        );
    }

    #[test]
    fn overwritten_template_restart_policies_are_named_in_one_warning() {
        let job = tfjob("a")
            .ps(1)
            .pod_spec(|s| s.restart_policy = Some("Always".into()))
            .workers(1)
            .pod_spec(|s| s.restart_policy = Some("Never".into()))
            .build();
        let plan = first_pass(&job);
        assert_eq!(plan.events.len(), 1);
        assert!(plan.events[0].message.ends_with("(PS, Worker)"));
    }

    #[test]
    fn an_empty_spec_fails_with_invalid_spec() {
        let job = tfjob("a").uid("u").namespace("ns").build();
        let mut pass = Pass::start(&job, &[], &[], Timestamp::UNIX_EPOCH);
        assert!(runnable_spec(&mut pass, &job.spec, &cfg()).is_none());
        let plan = pass.into_plan(false);
        assert_eq!(plan.outcomes, vec![Outcome::Failed]);
        assert_eq!(plan.events[0].reason, reason::INVALID_SPEC);
        assert!(conditions::is_true(
            &plan.status.expect("Failed"),
            kind::FAILED
        ));
    }
}
