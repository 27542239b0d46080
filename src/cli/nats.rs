//! How `lanmesh router --federate` and `lanmesh names release --federate` log in to NATS:
//! one set of options for both, so an operator gives the same ones to each.

use std::path::PathBuf;

use clap::Args;
use lanmesh_router::FederationConfig;

/// NATS login and TLS (with --federate).
#[derive(Debug, Args)]
pub(crate) struct NatsArgs {
    /// A NATS `.creds` file (user JWT and NKey seed), for servers in operator mode.
    #[arg(
        long,
        value_name = "FILE",
        requires = "federate",
        conflicts_with = "nats_nkey"
    )]
    nats_creds: Option<PathBuf>,
    /// A file holding an NKey user seed (SU…), for servers that list NKey users.
    #[arg(long, value_name = "FILE", requires = "federate")]
    nats_nkey: Option<PathBuf>,
    /// CA certificates (PEM) the NATS servers must present a certificate from (TLS).
    #[arg(long, value_name = "FILE", requires = "federate")]
    nats_ca: Option<PathBuf>,
    /// This router's TLS client certificate for NATS (PEM), with --nats-key.
    #[arg(long, value_name = "FILE", requires_all = ["federate", "nats_key"])]
    nats_cert: Option<PathBuf>,
    /// The key of --nats-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "nats_cert")]
    nats_key: Option<PathBuf>,
}

impl NatsArgs {
    /// Puts these options into `f`.
    pub(crate) fn apply(&self, f: &mut FederationConfig) {
        f.credentials = self.nats_creds.clone();
        f.nkey = self.nats_nkey.clone();
        f.tls_ca = self.nats_ca.clone();
        f.tls_client = self.nats_cert.clone().zip(self.nats_key.clone());
    }
}
