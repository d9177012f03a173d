use super::PublishMode;

pub enum StreamState {
    Created,

    Publishing {
        stream_key: String,
        // hawker: recorded but never read upstream either; kept to stay close to upstream.
        #[allow(dead_code)]
        mode: PublishMode,
    },

    Playing {
        stream_key: String,
    },

    Completed,
}

pub struct ActiveStream {
    pub current_state: StreamState,
}
