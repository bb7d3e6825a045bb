//! The admission rules, pure functions of the object (and its previous version on update) and
//! a [`Lookup`](crate::lookup::Lookup). One module per kind.

pub mod course;
pub mod enduser;
pub mod maintenance;
pub mod names;
pub mod reseller;

pub use course::validate_course;
pub use enduser::validate_end_user;
pub use maintenance::{validate_cluster_maintenance, validate_maintenance};
pub use reseller::validate_reseller;
