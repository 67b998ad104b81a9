//! In which batches the controller sends a plan's changes: every delete and adoption at once,
//! then the creates in slow-start batches of 1, 2, 4, ... as the Job controller sends them. A
//! batch of creates with a failure ends the creates, so a job whose pods cannot be created (a
//! quota, a missing ServiceAccount) costs one failed request per pass, not one per pod.

use super::Change;

/// The batches of one plan's changes; ask [`Batches::next`] for each in turn.
#[derive(Debug)]
pub struct Batches {
    /// Deletes and adoptions, sent first, all at once.
    others: Vec<Change>,
    creates: std::vec::IntoIter<Change>,
    /// The size of the next batch of creates.
    size: usize,
    /// Whether the last batch handed out was creates.
    sent_creates: bool,
}

/// The batches for `changes`.
pub fn batches(changes: Vec<Change>) -> Batches {
    let (creates, others): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(Change::is_create);
    Batches {
        others,
        creates: creates.into_iter(),
        size: 1,
        sent_creates: false,
    }
}

impl Batches {
    /// The next batch to send, all at once; `last_failed`: whether a change of the batch before
    /// failed. None when nothing is left to send.
    pub fn next(&mut self, last_failed: bool) -> Option<Vec<Change>> {
        if !self.others.is_empty() {
            return Some(std::mem::take(&mut self.others));
        }
        if self.sent_creates && last_failed {
            // The rest would fail alike; the next pass tries again.
            self.creates = Vec::new().into_iter();
            return None;
        }
        let batch: Vec<Change> = self.creates.by_ref().take(self.size).collect();
        if batch.is_empty() {
            return None;
        }
        self.sent_creates = true;
        self.size = self.size.saturating_mul(2);
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ChildRef;
    use k8s_openapi::api::core::v1::Pod;

    fn create(n: usize) -> Change {
        let mut pod = Pod::default();
        pod.metadata.name = Some(format!("p{n}"));
        Change::CreatePod(Box::new(pod))
    }

    fn delete(name: &str) -> Change {
        Change::DeleteService(ChildRef {
            name: name.into(),
            ..ChildRef::default()
        })
    }

    /// The sizes of the batches, with `failing` the batch (by number) whose send fails.
    fn sizes(changes: Vec<Change>, failing: Option<usize>) -> Vec<usize> {
        let mut batches = batches(changes);
        let mut sizes = Vec::new();
        let mut failed = false;
        while let Some(batch) = batches.next(failed) {
            failed = failing == Some(sizes.len());
            sizes.push(batch.len());
        }
        sizes
    }

    #[test]
    fn deletes_go_at_once_then_creates_double_from_one() {
        let mut changes: Vec<Change> = (0..10).map(create).collect();
        changes.insert(3, delete("a"));
        changes.push(delete("b"));
        assert_eq!(sizes(changes, None), [2, 1, 2, 4, 3]);
        assert_eq!(sizes((0..1).map(create).collect(), None), [1]);
        assert!(sizes(Vec::new(), None).is_empty());
    }

    #[test]
    fn a_failed_batch_of_creates_ends_the_creates_but_a_failed_delete_does_not() {
        let creates = || (0..10).map(create).collect::<Vec<_>>();
        assert_eq!(sizes(creates(), Some(0)), [1], "the first create failed");
        assert_eq!(sizes(creates(), Some(2)), [1, 2, 4]);
        let mut changes = creates();
        changes.push(delete("a"));
        assert_eq!(
            sizes(changes, Some(0)),
            [1, 1, 2, 4, 3],
            "the delete failed"
        );
    }

    #[test]
    fn creates_keep_the_planned_order() {
        let mut batches = batches((0..4).map(create).collect());
        let mut names = Vec::new();
        while let Some(batch) = batches.next(false) {
            for change in batch {
                if let Change::CreatePod(pod) = change {
                    names.extend(pod.metadata.name);
                }
            }
        }
        assert_eq!(names, ["p0", "p1", "p2", "p3"]);
    }
}
