//! The `alloc` names the standard prelude would give, for the `no_std` build: every
//! module that allocates imports them from here, so both builds read the same.

pub(crate) use alloc::borrow::ToOwned;
pub(crate) use alloc::boxed::Box;
pub(crate) use alloc::format;
pub(crate) use alloc::string::{String, ToString};
pub(crate) use alloc::vec;
pub(crate) use alloc::vec::Vec;
