//! polyfac adapter (knows nothing of AMQP).
