//! Device protocols otter speaks besides its own: each module translates one protocol to the
//! native model (the check index, the update decision, the stores, downloads) and holds no
//! release or decision logic of its own.

pub mod arduino;
pub mod hawkbit;
pub mod iotawatt;
pub mod manifest;
pub mod ota_backend;
pub mod thinx;
