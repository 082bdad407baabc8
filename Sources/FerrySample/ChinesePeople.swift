/// Names, places, phone numbers and identity-card numbers that look like the real thing.
enum ChinesePeople {
    /// The most common surnames, most frequent first (weights follow their rough share).
    static let surnames: [String] = [
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗",
        "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡",
        "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金",
        "石", "廖", "贾", "夏", "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "闫", "段", "雷", "侯",
        "龙", "史", "陶", "黎", "贺", "顾", "毛", "郝", "龚", "邵", "万", "钱", "严", "覃", "武", "戴", "莫", "孔", "向", "汤",
        "欧阳", "司马", "诸葛",
    ]
    static let surnameWeights: [Int] = surnames.indices.map { 4000 / ($0 + 6) + 1 }

    static let maleGiven: [String] = [
        "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波", "宇", "浩",
        "凯", "健", "俊", "帆", "旭", "宁", "龙", "林", "建", "国", "志", "文", "海", "峰", "东", "亮", "成", "晨", "阳", "博",
        "振", "永", "庆", "兵", "锋", "晓", "春", "江", "立", "新", "德", "荣", "子", "轩", "泽", "睿", "诚", "毅", "嘉", "航",
    ]
    static let femaleGiven: [String] = [
        "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "丹", "萍", "红", "婷", "雪", "琳", "洁", "颖", "倩", "慧",
        "晶", "佳", "欣", "梅", "莉", "蓉", "秀", "英", "兰", "月", "琴", "薇", "璐", "悦", "怡", "诗", "雨", "思", "嘉", "晓",
        "春", "文", "华", "媛", "婧", "瑶", "蕾", "楠", "琪", "露",
    ]

    static func name(_ rng: inout SampleRandom, female: Bool) -> String {
        let surname = surnames[rng.weighted(surnameWeights)]
        let pool = female ? femaleGiven : maleGiven
        if rng.chance(0.18) { return surname + rng.pick(pool) }
        var first = rng.pick(pool)
        var second = rng.pick(pool)
        while second == first { second = rng.pick(pool) }
        if rng.chance(0.15) { swap(&first, &second) }
        return surname + first + second
    }

    // Place names are made of two characters from these lists, like most county names.
    static let placeFirst: [String] = [
        "清", "安", "永", "兴", "平", "宁", "长", "新", "东", "西", "南", "北", "河", "山", "龙", "凤", "青", "白", "金", "石",
        "云", "丰", "庆", "临", "太", "江", "湖", "阳", "武", "文", "嘉", "广", "昌", "泰", "华", "宜", "崇", "洪", "桃", "松",
    ]
    static let placeSecond: [String] = [
        "阳", "安", "平", "宁", "川", "江", "山", "河", "州", "源", "丰", "泉", "水", "城", "林", "台", "化", "德", "和", "昌",
        "海", "峰", "湖", "溪", "桥", "兴", "远", "乐", "华", "定", "陵", "原", "田", "谷", "门", "口", "坪", "岭", "浦", "亭",
    ]

    /// A two-character place name not yet in `taken` (which it joins).
    static func placeName(_ rng: inout SampleRandom, taken: inout Set<String>) -> String {
        while true {
            let a = rng.pick(placeFirst)
            let b = rng.pick(placeSecond)
            guard a != b else { continue }
            let name = a + b
            if taken.insert(name).inserted { return name }
        }
    }

    static let mobilePrefixes: [String] = [
        "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "157", "158", "159",
        "166", "173", "176", "177", "180", "181", "182", "183", "185", "186", "187", "188", "189", "191", "198", "199",
    ]

    /// An 11-digit mobile number with a real carrier prefix.
    static func mobile(_ rng: inout SampleRandom) -> String {
        rng.pick(mobilePrefixes) + padded(rng.below(100_000_000), 8)
    }

    /// An 18-character resident identity-card number (GB 11643): region code, date of
    /// birth, a sequence number whose last digit is odd for men and even for women, and the
    /// ISO 7064 MOD 11-2 check character.
    static func identityCardNumber(_ rng: inout SampleRandom, region: String, birth: SampleDay, female: Bool) -> String {
        var sequence = rng.below(1000)
        if (sequence % 2 == 0) == !female { sequence = (sequence + 1) % 1000 }
        let body = region + birth.compact + padded(sequence, 3)
        return body + String(identityCheckCharacter(body))
    }

    static func identityCheckCharacter(_ first17: String) -> Character {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        var sum = 0
        for (i, c) in first17.utf8.enumerated() where i < 17 { sum += Int(c - 48) * weights[i] }
        return Array("10X98765432")[sum % 11]
    }

    /// Chinese numerals for ordinals in names (1…99): 一, 十二, 二十三.
    static func numeral(_ n: Int) -> String {
        let digits = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"]
        if n < 10 { return digits[n] }
        let tens = n / 10
        let ones = n % 10
        return (tens == 1 ? "" : digits[tens]) + "十" + (ones == 0 ? "" : digits[ones])
    }
}
