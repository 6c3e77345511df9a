//! helios adapter (knows nothing of AMQP).
