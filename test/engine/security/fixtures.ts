/** A journey that sends one member an SMS, an email and a WeChat template message on `sec.ping`. */
export const SEND_ALL_CHANNELS: Readonly<Record<string, string>> = {
  "sec-send.yaml": `id: sec-send
name: security
status: active
category: transactional
trigger: { event: { type: sec.ping } }
steps:
  - { id: s1, send: { channel: sms, template: sec } }
  - { id: s2, send: { channel: email, template: sec } }
  - { id: s3, send: { channel: wechat, template: sec } }
`,
  "templates/sms/sec.hbs": "Hi {{member.name}} [{{event.marker}}]\n",
  "templates/email/sec.hbs": '---\nsubject: "Hello {{member.name}}"\n---\n<p>Hi {{member.name}} [{{event.marker}}]</p><a href="{{unsubscribeUrl}}">unsubscribe</a>\n',
  "templates/wechat/sec.yaml": 'kind: template\ntemplateId: SecTpl0001\ndata:\n  thing1: "{{member.name}}"\n  thing2: "{{event.marker}}"\n'
}
