//! The TFJob resource: types, defaults, names and the CRD. No I/O.

pub mod admission;
pub mod builder;
pub mod child;
pub mod crd;
pub mod defaults;
pub mod labels;
pub mod podgroup;
pub mod quantity;
pub mod replica_type;
pub mod template;
pub mod types;

pub use child::{ChildPod, ChildService, ControllerRef, Lineage, ObservedChild, PodState, Waiting};
pub use replica_type::ReplicaType;
pub use template::PodTemplate;
pub use types::*;
