const express = require('express')
const mongoose = require('mongoose')
const User = require('../../models/User')

const Category = mongoose.model('Category', new mongoose.Schema({ name: String }))
const router = express.Router()

router.get('/', async (req, res) => {
  const users = await User.find({ role: req.query.role }).sort({ createdAt: -1 }).limit(20).lean()
  res.json(users)
})

router.get('/:id', async (req, res) => {
  const user = await User.findById(req.params.id)
  if (!user) return res.sendStatus(404)
  res.json(user)
})

router.post('/', async (req, res) => {
  const user = new User(req.body)
  await user.save()
  res.status(201).json(user)
})

router.patch('/:id', async (req, res) => {
  const user = await User.findByIdAndUpdate(req.params.id, req.body, { new: true })
  res.json(user)
})

router.delete('/:id', async (req, res) => {
  await User.deleteOne({ _id: req.params.id })
  res.sendStatus(204)
})

router.get('/categories/all', async (req, res) => {
  res.json(await Category.find())
})

router.post('/bulk', async (req, res) => {
  const session = await mongoose.startSession()
  await session.withTransaction(async () => {
    await User.insertMany(req.body.users, { session })
    await Category.create([{ name: req.body.category }], { session })
  })
  session.endSession()
  res.sendStatus(201)
})

module.exports = router
