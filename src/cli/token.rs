//! `switchyard token create|list|revoke|scopes`.

use serde_json::{Value, json};

use super::client::{Client, ServerArgs, encode};
use super::table::{self, cell};

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token; prints its secret, which is not shown again.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        name: String,
        /// A scope (repeat or separate with commas), e.g. `queues:work`.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime, e.g. `12h`, `30d`; none: until revoked.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token; it is refused from the next request on.
    Revoke {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// The scopes a token can hold.
    Scopes,
}

pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            server,
            name,
            scopes,
            ttl,
        } => {
            let issued = Client::new(&server)
                .post(
                    "/v1/tokens",
                    &json!({ "name": name, "scopes": scopes, "ttl": ttl }),
                )
                .await?;
            eprintln!(
                "token {} ({}); shown once, keep it safe:",
                cell(&issued["id"]),
                cell(&issued["scopes"])
            );
            println!("{}", cell(&issued["token"]));
        }
        TokenCommand::List { server } => {
            let list = Client::new(&server).get("/v1/tokens").await?;
            let rows: Vec<Vec<String>> = list["tokens"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t: &Value| {
                    vec![
                        cell(&t["id"]),
                        cell(&t["name"]),
                        cell(&t["status"]),
                        cell(&t["expires_at"]),
                        t["scopes"]
                            .as_array()
                            .map(|s| s.iter().map(cell).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(&["ID", "NAME", "STATUS", "EXPIRES", "SCOPES"], &rows);
        }
        TokenCommand::Revoke { server, id } => {
            let token = Client::new(&server)
                .post(&format!("/v1/tokens/{}/revoke", encode(&id)), &json!({}))
                .await?;
            println!("revoked {}", cell(&token["id"]));
        }
        TokenCommand::Scopes => {
            let rows: Vec<Vec<String>> = crate::auth::scope::SCOPES
                .iter()
                .map(|(s, what)| vec![s.to_string(), what.to_string()])
                .collect();
            table::print(&["SCOPE", "ALLOWS"], &rows);
        }
    }
    Ok(())
}
