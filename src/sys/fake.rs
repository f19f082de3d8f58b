//! A scripted [`super::Sys`] for unit tests (to be written).
