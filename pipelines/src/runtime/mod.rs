//! The AMQP runtime (DESIGN §3). Being written: see issue 2.
