//! The JSON patch operations the controller writes: a `test` of what it read, then the change,
//! so that a concurrent change of the same field is never clobbered (the patch fails instead).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use serde_json::Value;

fn pointer(path: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(path.iter().copied())
}

/// The value at `path` must be `value` (or absent, for `Value::Null`).
pub fn test(path: &[&str], value: Value) -> PatchOperation {
    let path = pointer(path);
    PatchOperation::Test(TestOperation { path, value })
}

/// Sets `path` to `value` (`-` as the last token appends to a list).
pub fn add(path: &[&str], value: Value) -> PatchOperation {
    let path = pointer(path);
    PatchOperation::Add(AddOperation { path, value })
}

/// Removes `path`.
pub fn remove(path: &[&str]) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation {
        path: pointer(path),
    })
}
