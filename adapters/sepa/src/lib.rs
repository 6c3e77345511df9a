//! sepa adapter (knows nothing of AMQP).
