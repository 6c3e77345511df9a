//! payfip adapter (knows nothing of AMQP).
