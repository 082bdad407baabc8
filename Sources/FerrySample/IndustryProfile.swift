/// What a unit of one industry looks like: its names, departments, staff, and the service
/// posts that join party work to its own business.
struct IndustryProfile {
    /// A service post kind: its name, its line of business, the prefix of the business
    /// system's ticket numbers, and how much one session serves.
    struct Post {
        var name: String
        var area: String
        var referencePrefix: String
        var beneficiaries: ClosedRange<Int>
        var notes: [String]
    }

    /// Unit names at the county seat, each appended to the county's name.
    var seatNames: [String]
    /// How many of the industry's units in a county sit in the county seat before the
    /// towns get one each.
    var seatFirst: Int
    /// Unit names in a town, appended to the town's name ("某某镇").
    var townName: String
    /// A catch-all for counties with more units of the industry than names above.
    var ordinalName: String
    var branches: [String]
    var positions: [String]
    var leaderPosition: String
    var posts: [Post]
    /// Weights of `Vocabulary.educations` for branch secretaries, and for everyone else.
    var leaderEducation: [Int]
    var education: [Int]
    var femaleShare: Double
    /// How large such units run, relative to the shape's member range.
    var sizeFactor: Double
    var lectureTopics: [String]
    var themeActivities: [String]
    var publicRespondents: ClosedRange<Int>

    static func of(_ industry: Industry) -> IndustryProfile {
        switch industry {
        case .education: return education
        case .medical: return medical
        case .research: return research
        case .culture: return culture
        case .publicService: return publicService
        case .other: return other
        }
    }

    static let education = IndustryProfile(
        seatNames: [
            "第一中学", "实验小学", "第二中学", "第一小学", "实验中学", "职业中等专业学校", "第二小学", "第一幼儿园", "第三中学",
            "特殊教育学校", "第三小学", "教师发展中心",
        ], seatFirst: 4,
        townName: "中心学校", ordinalName: "小学",
        branches: ["语文教研组党支部", "数学教研组党支部", "综合教研组党支部", "行政后勤党支部", "英语教研组党支部", "理化生教研组党支部", "体艺教研组党支部"],
        positions: ["高级教师", "一级教师", "一级教师", "二级教师", "二级教师", "班主任", "教研组长", "年级组长", "教务干事", "总务干事"],
        leaderPosition: "校长",
        posts: [
            Post(name: "党员先锋岗·课后辅导", area: "课后辅导", referencePrefix: "KH", beneficiaries: 5...40, notes: ["课后服务时段", "薄弱学科辅导", "毕业班答疑"]),
            Post(name: "党员示范课堂", area: "教学", referencePrefix: "JX", beneficiaries: 30...60, notes: ["公开课", "送教下乡"]),
            Post(name: "家访服务队", area: "家校共育", referencePrefix: "JF", beneficiaries: 1...6, notes: ["留守儿童家访", "困难学生家访"]),
            Post(name: "心理健康辅导站", area: "心理辅导", referencePrefix: "XL", beneficiaries: 1...12, notes: ["考前减压", "团体辅导"]),
        ],
        leaderEducation: [0, 3, 6, 1, 0], education: [0, 3, 14, 6, 1], femaleShare: 0.62, sizeFactor: 1.0,
        lectureTopics: ["践行教育家精神 办好人民满意的教育", "落实立德树人根本任务", "做党和人民满意的好老师"],
        themeActivities: ["党员教师送教下乡", "学雷锋志愿服务进校园", "师德师风专题学习"],
        publicRespondents: 80...400)

    static let medical = IndustryProfile(
        seatNames: [
            "人民医院", "中医医院", "妇幼保健院", "疾病预防控制中心", "第二人民医院", "精神卫生中心", "急救中心", "皮肤病防治所",
            "卫生健康服务中心",
        ], seatFirst: 3,
        townName: "卫生院", ordinalName: "社区卫生服务中心",
        branches: ["内科党支部", "外科党支部", "医技党支部", "护理党支部", "门诊党支部", "妇儿党支部", "行政后勤党支部", "公共卫生党支部"],
        positions: ["主任医师", "副主任医师", "主治医师", "主治医师", "住院医师", "主管护师", "护师", "护师", "主管药师", "主管检验师", "科室主任", "护士长"],
        leaderPosition: "院长",
        posts: [
            Post(name: "党员示范门诊", area: "门诊", referencePrefix: "MZ", beneficiaries: 15...80, notes: ["专家门诊", "周末门诊", "便民门诊"]),
            Post(name: "党员先锋岗·健康体检", area: "健康体检", referencePrefix: "TJ", beneficiaries: 20...150, notes: ["老年人免费体检", "入学体检"]),
            Post(name: "家庭医生签约服务队", area: "家庭医生", referencePrefix: "JT", beneficiaries: 5...40, notes: ["慢病随访", "上门巡诊"]),
            Post(name: "党员义诊服务队", area: "义诊", referencePrefix: "YZ", beneficiaries: 30...200, notes: ["义诊进社区", "送医下乡"]),
        ],
        leaderEducation: [1, 4, 5, 0, 0], education: [1, 4, 12, 7, 2], femaleShare: 0.58, sizeFactor: 1.35,
        lectureTopics: ["弘扬崇高职业精神 守护人民健康", "坚持人民至上 生命至上", "加强医德医风建设"],
        themeActivities: ["党员义诊进社区", "健康知识宣讲", "无偿献血志愿活动"],
        publicRespondents: 100...500)

    static let research = IndustryProfile(
        seatNames: [
            "农业科学研究所", "林业科学研究所", "农业技术推广中心", "畜牧兽医站", "水利科学研究所", "茶叶研究所", "蚕桑研究所",
            "土壤肥料工作站",
        ], seatFirst: 6,
        townName: "农业技术推广站", ordinalName: "科研所",
        branches: ["研究室第一党支部", "研究室第二党支部", "科研管理党支部", "试验基地党支部", "行政党支部"],
        positions: ["研究员", "副研究员", "助理研究员", "助理研究员", "高级工程师", "工程师", "工程师", "高级农艺师", "农艺师", "课题组长"],
        leaderPosition: "所长",
        posts: [
            Post(name: "科技特派员服务岗", area: "技术推广", referencePrefix: "TP", beneficiaries: 10...80, notes: ["田间技术指导", "良种推广"]),
            Post(name: "党员攻关示范岗", area: "科研攻关", referencePrefix: "GG", beneficiaries: 1...10, notes: ["课题攻关", "技术咨询"]),
            Post(name: "科普宣传岗", area: "科普", referencePrefix: "KP", beneficiaries: 30...200, notes: ["科普进校园", "科技活动周"]),
            Post(name: "实验室开放岗", area: "实验室开放", referencePrefix: "SY", beneficiaries: 5...40, notes: ["检测服务", "开放日"]),
        ],
        leaderEducation: [3, 5, 2, 0, 0], education: [3, 8, 10, 2, 0], femaleShare: 0.45, sizeFactor: 0.9,
        lectureTopics: ["弘扬科学家精神 勇攀科技高峰", "把论文写在大地上", "以科技创新服务乡村振兴"],
        themeActivities: ["科技下乡服务", "科普进校园", "田间技术培训"],
        publicRespondents: 40...200)

    static let culture = IndustryProfile(
        seatNames: ["文化馆", "图书馆", "博物馆", "融媒体中心", "非物质文化遗产保护中心", "文物保护中心", "艺术剧团", "档案馆"], seatFirst: 4,
        townName: "综合文化站", ordinalName: "文化服务中心",
        branches: ["业务部党支部", "综合部党支部", "采编党支部", "演出部党支部"],
        positions: ["馆员", "馆员", "副研究馆员", "助理馆员", "编辑", "记者", "演员", "文化专干", "部门主任", "讲解员"],
        leaderPosition: "馆长",
        posts: [
            Post(name: "文化惠民服务岗", area: "公益演出", referencePrefix: "YC", beneficiaries: 50...600, notes: ["送戏下乡", "广场文艺演出"]),
            Post(name: "全民阅读推广岗", area: "阅读推广", referencePrefix: "YD", beneficiaries: 10...120, notes: ["亲子阅读", "读书分享会"]),
            Post(name: "非遗传承示范岗", area: "非遗保护", referencePrefix: "FY", beneficiaries: 10...80, notes: ["非遗进校园", "传承人培训"]),
            Post(name: "党员讲解服务岗", area: "展览讲解", referencePrefix: "JJ", beneficiaries: 20...150, notes: ["红色展览讲解", "研学团队接待"]),
        ],
        leaderEducation: [0, 2, 6, 2, 0], education: [0, 2, 12, 7, 2], femaleShare: 0.52, sizeFactor: 0.6,
        lectureTopics: ["坚定文化自信 繁荣文化事业", "用心用情讲好中国故事", "守护文化根脉"],
        themeActivities: ["文化惠民进社区", "红色故事宣讲", "全民阅读推广"],
        publicRespondents: 60...400)

    static let publicService = IndustryProfile(
        seatNames: [
            "政务服务中心", "社会保险事业服务中心", "公共就业和人才服务中心", "不动产登记中心", "医疗保障服务中心", "退役军人服务中心",
            "住房公积金服务中心", "市场监管服务中心", "城乡规划服务中心",
        ], seatFirst: 5,
        townName: "便民服务中心", ordinalName: "服务中心",
        branches: ["窗口服务党支部", "审批服务党支部", "综合业务党支部", "机关党支部"],
        positions: ["科员", "科员", "窗口工作人员", "窗口工作人员", "副科长", "科长", "办事员", "综合专干", "业务主管"],
        leaderPosition: "主任",
        posts: [
            Post(name: "党员先锋窗口", area: "政务服务", referencePrefix: "ZW", beneficiaries: 20...120, notes: ["延时服务", "周末不打烊"]),
            Post(name: "帮办代办服务岗", area: "帮办代办", referencePrefix: "BB", beneficiaries: 3...30, notes: ["企业开办帮办", "老年人代办"]),
            Post(name: "政策咨询岗", area: "政策咨询", referencePrefix: "ZX", beneficiaries: 10...80, notes: ["社保政策咨询", "就业政策宣讲"]),
            Post(name: "党员上门服务队", area: "上门服务", referencePrefix: "SM", beneficiaries: 1...15, notes: ["行动不便群众上门办", "进村入户宣传"]),
        ],
        leaderEducation: [0, 2, 7, 1, 0], education: [0, 2, 14, 6, 1], femaleShare: 0.5, sizeFactor: 0.8,
        lectureTopics: ["践行服务宗旨 优化政务服务", "以群众满意为标准提升服务效能", "坚持人民立场 办好民生实事"],
        themeActivities: ["政策宣讲进社区", "窗口服务作风整顿", "便民服务进村"],
        publicRespondents: 100...600)

    static let other = IndustryProfile(
        seatNames: ["机关事务服务中心", "气象台", "地方志编纂中心", "接待服务中心", "机关后勤服务中心", "党员教育中心"], seatFirst: 5,
        townName: "农业综合服务站", ordinalName: "事务中心",
        branches: ["机关党支部", "业务党支部"],
        positions: ["科员", "办事员", "工程师", "助理工程师", "综合专干", "科长"],
        leaderPosition: "主任",
        posts: [
            Post(name: "党员示范岗", area: "综合服务", referencePrefix: "ZH", beneficiaries: 5...60, notes: ["后勤保障", "会务服务"]),
            Post(name: "党员志愿服务队", area: "志愿服务", referencePrefix: "ZY", beneficiaries: 10...100, notes: ["文明城市创建", "社区志愿服务"]),
        ],
        leaderEducation: [0, 1, 5, 2, 0], education: [0, 1, 10, 8, 3], femaleShare: 0.45, sizeFactor: 0.5,
        lectureTopics: ["立足岗位作贡献", "锤炼过硬作风", "做好新时代服务保障工作"],
        themeActivities: ["文明城市创建志愿服务", "结对帮扶走访"],
        publicRespondents: 30...200)
}

/// Chinese text shared by every industry.
enum Vocabulary {
    static let educations = ["博士研究生", "硕士研究生", "大学本科", "大学专科", "中专"]
    static let retireeBranch = "离退休党支部"
    static let retireePositions = ["退休干部", "退休职工", "退休专业技术人员"]
    static let retireePost = IndustryProfile.Post(
        name: "银发志愿服务队", area: "社区志愿服务", referencePrefix: "YF", beneficiaries: 5...50, notes: ["社区巡逻", "关爱空巢老人"])

    static let readings = [
        "《中国共产党章程》", "《中国共产党纪律处分条例》", "《中国共产党支部工作条例（试行）》", "《中国共产党党员教育管理工作条例》",
        "《关于新形势下党内政治生活的若干准则》", "《中国共产党廉洁自律准则》", "《习近平新时代中国特色社会主义思想学习纲要》",
        "《习近平谈治国理政》第四卷", "《中国共产党简史》", "《中国共产党党员权利保障条例》",
    ]

    /// The year's main study campaign.
    static func campaign(_ year: Int) -> String {
        switch year {
        case ...2021: return "党史学习教育"
        case 2022: return "学习宣传贯彻党的二十大精神"
        case 2023: return "学习贯彻习近平新时代中国特色社会主义思想主题教育"
        case 2024: return "党纪学习教育"
        case 2025: return "深入贯彻中央八项规定精神学习教育"
        default: return "学习贯彻党的二十届四中全会精神"
        }
    }

    static let congressAgendas = [
        "通报支部季度工作情况", "讨论接收预备党员", "讨论预备党员按期转正", "民主推荐入党积极分子", "研究部署下季度重点工作",
        "通报党费收缴情况", "传达学习上级会议精神",
    ]
    static let committeeAgendas = [
        "研究本月支部工作安排", "研究发展党员工作", "研究主题党日活动方案", "讨论党员教育培训计划", "研究党员先锋岗设置",
        "分析党员思想动态", "研究困难党员帮扶事项",
    ]
    static let lectureTopics = [
        "坚定理想信念 筑牢信仰之基", "以党的创新理论武装头脑", "严守党的纪律规矩", "践行全心全意为人民服务宗旨", "弘扬伟大建党精神",
        "把牢政治方向 锤炼党性修养", "发扬斗争精神 增强斗争本领",
    ]
    /// Theme-day activities by month (index 0 = January).
    static let themeByMonth = [
        "新春走访慰问困难党员", "学习党章 按时交纳党费", "学雷锋志愿服务", "清明祭扫烈士陵园", "重温入党誓词", "庆祝建党节专题活动",
        "“七一”表彰暨重温入党誓词", "“八一”走访慰问退役军人", "参观红色教育基地", "国庆主题教育", "廉政警示教育",
        "学习宪法 弘扬法治精神",
    ]
    static let places = ["党员活动室", "第一会议室", "第二会议室", "党建活动中心", "多功能厅"]
    static let outingPlaces = ["红色教育基地", "烈士陵园", "社区党群服务中心", "廉政教育基地"]
    static let exhortations = [
        "把学习成果转化为推动工作的实际成效", "严格落实“三会一课”制度", "立足岗位发挥党员先锋模范作用", "持续改进工作作风，提升服务质量",
        "严守纪律规矩，筑牢拒腐防变思想防线", "坚持学思用贯通、知信行统一",
    ]
    static let ratingComments: [String: [String]] = [
        "excellent": ["政治立场坚定，工作业绩突出，模范带头作用明显", "学习积极主动，业务精湛，群众评价高", "勇于担当，在急难险重任务中表现突出"],
        "qualified": ["能够履行党员义务，工作认真负责", "按时参加组织生活，完成本职工作", "遵守党的纪律，团结同志"],
        "basically_qualified": ["学习不够主动，参加组织生活不够经常，需加强", "作用发挥不够明显，需提高思想认识"],
        "unqualified": ["长期不参加组织生活，经教育仍无明显改进"],
    ]
    static let noteBodies = [
        "提醒：月底前报送党费收缴台账", "待办：核对党员联系电话", "县委组织部联系人已调整，见通讯录", "下次主题党日需提前预约红色教育基地",
        "待办：整理上季度会议记录归档", "提醒：预备党员转正材料需支委会审议", "打印机墨盒已领用，下月再申请",
    ]
}
