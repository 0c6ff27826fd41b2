'use strict'
// One topic's round trip through a kafkajs client: create it, produce `values`, read them back with
// a fresh consumer group. Returns what the group read, in order.

const { Partitioners } = require('kafkajs')
const { uniqueTopic } = require('./broker')

async function roundTrip (kafka, topic, values) {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  await admin.disconnect()
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
  await producer.connect()
  await producer.send({ topic, messages: values.map((value) => ({ value })) })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: uniqueTopic('js-roundtrip-g'), maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString())
        if (got.length === values.length) resolve()
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  return got
}

module.exports = { roundTrip }
