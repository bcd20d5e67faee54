//! The few fields of incoming Bot API objects that dhan-keeper reads.
//!
//! Outgoing requests use `frankenstein`'s parameter types; incoming updates are decoded into
//! these small structs instead of its full `Update` graph. Measured, that graph's generated
//! deserializers were about 3 MB of the release binary (a third of it), and every field we do not
//! read is one more way for a new Bot API version to make an update fail to decode. Unknown
//! fields are ignored; an update that is neither a message nor a button press is skipped.

use serde::Deserialize;

/// One incoming update.
#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    /// Its id; the next poll asks for `update_id + 1`.
    pub update_id: i64,
    /// A new message.
    #[serde(default)]
    pub message: Option<Message>,
    /// A button press.
    #[serde(default)]
    pub callback_query: Option<CallbackQuery>,
}

/// A message (also an "inaccessible message", which has only the chat and the id).
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// Id within the chat.
    pub message_id: i64,
    /// Where it was sent.
    pub chat: Chat,
    /// Who sent it (absent for channel posts).
    #[serde(default)]
    pub from: Option<User>,
    /// Its text, if it is a text message.
    #[serde(default)]
    pub text: Option<String>,
}

/// A chat.
#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    /// Chat id (negative for groups).
    pub id: i64,
}

/// A user or bot.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// User id.
    pub id: i64,
    /// `@username`, for bots always present.
    #[serde(default)]
    pub username: Option<String>,
}

/// A press on an inline button.
#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    /// Id to answer with `answerCallbackQuery`.
    pub id: String,
    /// Who pressed.
    pub from: User,
    /// The message the button was on.
    #[serde(default)]
    pub message: Option<Message>,
    /// The button's callback data.
    #[serde(default)]
    pub data: Option<String>,
}
