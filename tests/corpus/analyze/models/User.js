const mongoose = require('mongoose')

const userSchema = new mongoose.Schema({
  email: { type: String, required: true, unique: true },
  name: String,
  role: { type: String, default: 'member' },
}, { timestamps: true })

userSchema.statics.byEmail = function byEmail(email) {
  return this.findOne({ email })
}

module.exports = mongoose.model('User', userSchema)
