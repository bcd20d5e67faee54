//! `dhan-keeper demo --interactive`: the newcomer types the trader's messages.

use super::*;

/// `demo --interactive`: the trader's keyboard is stdin.
pub(super) async fn play() -> anyhow::Result<()> {
    let Started { stage, running, http, shutdown, printer, _dir } = start().await?;
    let t = Arc::clone(&stage.t);
    t.step("Your turn: you are the trader");
    println!(
        "Type bot commands (/help, /status, /refresh, /pause, /resume, /account, /token …) and see the replies.\n\
         Also: `press <button text>` taps a button on the last message that has it, `web` mints a token on\n\
         \"Dhan Web\" (yours is revoked), `outage` makes Dhan fail the next 3 mints, `http` fetches the token\n\
         like a trading program (GET http://{http}/token), `quit` (or Ctrl-D) stops."
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // A plain thread: a blocking read must not hold up the runtime.
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let client = reqwest::Client::new();
    while let Some(line) = rx.recv().await {
        let line = line.trim();
        match line.split_once(' ').map_or((line, ""), |(a, b)| (a, b.trim())) {
            ("", _) => {}
            ("quit" | "exit" | "q", _) => break,
            ("web", _) => {
                stage.sim.mint_elsewhere();
                stage.sim.reset_cooldown();
                t.line("⚙", "someone minted a token on Dhan Web: the daemon's token is dead; watch it notice");
            }
            ("outage", _) => {
                stage.sim.inject("generateAccessToken", Fault::Status { status: 500 }, 3);
                t.line("⚙", "Dhan will fail the next 3 mints; try /refresh or wait for the rotation");
            }
            ("http", _) => match client.get(format!("http://{http}/token")).bearer_auth(HTTP_TOKEN).send().await {
                Ok(r) => {
                    let status = r.status();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    t.line(
                        "⚙",
                        &format!("GET /token → {status}, expiring {}", body["expiry_time"].as_str().unwrap_or("?")),
                    );
                }
                Err(e) => t.line("⚙", &format!("GET /token failed: {e}")),
            },
            ("press", label) => match find_button(&stage.tg.sent(TRADER), label) {
                Some((message_id, data)) => {
                    t.line("👤", &format!("(taps [{label}])"));
                    stage.tg.inject_callback(TRADER, TRADER, message_id, &data);
                }
                None => t.line("⚙", &format!("no button containing {label:?} on the bot's messages")),
            },
            _ => {
                t.line("👤", line);
                stage.tg.inject_text(TRADER, TRADER, line);
            }
        }
    }
    shutdown.cancel();
    running.join().await;
    let _ = printer.await;
    t.flush();
    println!("\nBye. `dhan-keeper init` writes a config template for the real thing.");
    Ok(())
}

/// The newest message with a button whose text contains `label` (case-insensitive): its id and
/// the button's callback data.
pub(super) fn find_button(sent: &[serde_json::Value], label: &str) -> Option<(i64, String)> {
    let label = label.to_lowercase();
    sent.iter().rev().find_map(|m| {
        let row = m["reply_markup"]["inline_keyboard"].as_array()?;
        let b = row.iter().flat_map(|r| r.as_array().into_iter().flatten()).find(|b| {
            b["text"].as_str().is_some_and(|t| t.to_lowercase().contains(&label)) && b["callback_data"].is_string()
        })?;
        Some((m["message_id"].as_i64()?, b["callback_data"].as_str()?.to_string()))
    })
}
