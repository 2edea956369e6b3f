//! Outbound HTTP (`wasi:http`): only to the hosts the manifest lists.

use std::sync::Arc;

use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

pub struct HttpPolicy {
    plugin: Arc<str>,
    /// `host` (any port) or `host:port`.
    allowed_hosts: Arc<[String]>,
    pub(super) denied: Vec<String>,
}

impl HttpPolicy {
    pub fn new(plugin: Arc<str>, allowed_hosts: Arc<[String]>) -> Self {
        Self {
            plugin,
            allowed_hosts,
            denied: Vec::new(),
        }
    }

    /// Is `host` (with the request's port) on the allow-list?
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let with_port = format!("{host}:{port}");
        self.allowed_hosts.iter().any(|allowed| {
            allowed.eq_ignore_ascii_case(host) || allowed.eq_ignore_ascii_case(&with_port)
        })
    }
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.allows(&host, port) {
            let msg =
                format!("outbound HTTP to {host}:{port} denied: not in permissions.allowed_hosts");
            tracing::warn!(plugin = %self.plugin, "{msg}");
            self.denied.push(msg);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // Allowed: hand over to wasmtime's default client.
        struct Default;
        impl WasiHttpHooks for Default {}
        Default.send_request(request, options, fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_host_or_host_and_port() {
        let p = HttpPolicy::new(
            "p".into(),
            vec!["api.example.com".into(), "127.0.0.1:8080".into()].into(),
        );
        assert!(p.allows("api.example.com", 443));
        assert!(p.allows("API.example.com", 80));
        assert!(p.allows("127.0.0.1", 8080));
        assert!(!p.allows("127.0.0.1", 8081));
        assert!(!p.allows("example.com", 443));
        assert!(!p.allows("api.example.com.evil.net", 443));
    }
}
